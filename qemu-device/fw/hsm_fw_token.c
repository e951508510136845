// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hsmcard firmware core: key tokens (HSM_ADM_TOKEN_CREATE / TOKEN_OPEN).
 *
 * A token names one persistent key of one card: struct hsm_key_token holds
 * the key's type, size and handle and the card's identity, authenticated
 * with HMAC-SHA-256 under the card's token key.  The token key is derived
 * from the key store's master key, so tokens stay good across restarts of
 * a card with the same store; a card without a store uses a random one.
 * Tamper wipes it with the master key.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hsm_fw_int.h"

#define HSM_TOKEN_MAC_OFF	offsetof(struct hsm_key_token, mac)

_Static_assert(sizeof(struct hsm_key_token) == HSM_TOKEN_SIZE, "token size");
_Static_assert(HSM_TOKEN_MAC_OFF == 48, "token MAC offset");

static const char hsm_token_label[] = "hsmcard key token key v1";

/* Derive (or, without a key store, draw) the token key. */
int hsm_token_key_init(struct hsm_fw *fw)
{
	if (!fw->ks_path)
		return RAND_priv_bytes(fw->token_key,
				       sizeof(fw->token_key)) == 1 ? 0 : -1;
	hsm_hmac_raw(fw->mk, sizeof(fw->mk), hsm_token_label,
		     sizeof(hsm_token_label) - 1, fw->token_key);
	return 0;
}

static void hsm_token_mac(struct hsm_fw *fw, const struct hsm_key_token *t,
			  uint8_t *mac)
{
	hsm_hmac_raw(fw->token_key, sizeof(fw->token_key), t,
		     HSM_TOKEN_MAC_OFF, mac);
}

/*
 * TOKEN_CREATE: handle = persistent AES key; dst = struct hsm_key_token;
 * result = HSM_TOKEN_SIZE.
 */
uint16_t hsm_adm_token_create(struct hsm_cmd *c)
{
	struct hsm_key_token t;
	struct hsm_xbuf *xb;
	struct hsm_key *k;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_HANDLE | HSM_F_DST);
	if (st)
		return st;
	st = hsm_key_get(c->fw, c->handle, &k);
	if (st)
		return st;
	if (k->type != HSM_KEY_AES) {
		st = HSM_SC_KEY_TYPE;
		goto out;
	}
	if (!(k->flags & HSM_KEYF_PERSISTENT)) {
		st = HSM_SC_INVALID_FIELD;
		goto out;
	}
	if (c->dst_len > HSM_FW_MAX_XFER) {
		st = HSM_SC_INVALID_LENGTH;
		goto out;
	}
	if (c->dst_len < HSM_TOKEN_SIZE) {
		c->result = HSM_TOKEN_SIZE;
		st = HSM_SC_BUFFER_TOO_SMALL;
		goto out;
	}
	memset(&t, 0, sizeof(t));
	t.magic = htole32(HSM_TOKEN_MAGIC);
	t.version = htole16(HSM_TOKEN_VERSION);
	t.type = htole16(k->type);
	t.bits = htole16(k->bits);
	memcpy(t.card_id, c->fw->card_id, sizeof(t.card_id));
	t.handle = htole64(k->handle);
	hsm_token_mac(c->fw, &t, t.mac);

	xb = malloc(sizeof(*xb));
	if (!xb) {
		st = HSM_SC_INTERNAL;
		goto out;
	}
	st = hsm_xbuf_dst(c, xb);
	if (!st)
		st = hsm_xbuf_write(xb, &t, sizeof(t));
	if (!st)
		c->result = HSM_TOKEN_SIZE;
	free(xb);
out:
	hsm_key_put(k);
	return st;
}

/* TOKEN_OPEN: src = struct hsm_key_token; result = the key's handle. */
uint16_t hsm_adm_token_open(struct hsm_cmd *c)
{
	struct hsm_key_token t;
	uint8_t mac[32];
	struct hsm_xbuf *xb;
	struct hsm_key *k;
	uint64_t handle;
	uint16_t st;

	st = hsm_cmd_check_fields(c, HSM_F_SRC);
	if (st)
		return st;
	if (hsm_fw_is_tampered(c->fw))
		return HSM_SC_TAMPERED;
	if (c->src_len != HSM_TOKEN_SIZE)
		return HSM_SC_INVALID_LENGTH;
	xb = malloc(sizeof(*xb));
	if (!xb)
		return HSM_SC_INTERNAL;
	st = hsm_xbuf_src(c, xb);
	if (!st)
		st = hsm_xbuf_read(xb, &t, sizeof(t));
	free(xb);
	if (st)
		return st;
	if (le32toh(t.magic) != HSM_TOKEN_MAGIC ||
	    le16toh(t.version) != HSM_TOKEN_VERSION || t.rsvd0 || t.rsvd1 ||
	    t.rsvd2)
		return HSM_SC_INVALID_FIELD;
	hsm_token_mac(c->fw, &t, mac);
	if (CRYPTO_memcmp(mac, t.mac, sizeof(mac)) ||
	    memcmp(t.card_id, c->fw->card_id, sizeof(t.card_id)))
		return HSM_SC_INVALID_TOKEN;
	handle = le64toh(t.handle);
	st = hsm_key_get(c->fw, handle, &k);
	if (st == HSM_SC_INVALID_HANDLE)
		return HSM_SC_INVALID_TOKEN;
	if (st)
		return st;
	/* the slot must still hold the very key the token was made for */
	if (k->type != le16toh(t.type) || k->bits != le16toh(t.bits) ||
	    !(k->flags & HSM_KEYF_PERSISTENT))
		st = HSM_SC_INVALID_TOKEN;
	else
		c->result = handle;
	hsm_key_put(k);
	return st;
}
