/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hsmcard firmware core: the card's command semantics, key store and crypto
 * engine.  Plain C and OpenSSL 3; no QEMU headers.  The QEMU device model
 * (qemu-device/hsmcard.c) is glue around it, and the host unit tests and the
 * engine benchmark link it directly.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSM_FW_H
#define HSM_FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../driver/hsmcard_hw.h"

/* Key partitions and the handle layout are in driver/hsmcard_hw.h. */

/*
 * Command semantics of this firmware (Documentation/hsmcard/hw.rst is
 * written from this).  Common rules:
 *
 * - Fields a command does not use are reserved and must be zero, else
 *   HSM_SC_INVALID_FIELD: that includes flags (SRC_SGL/DST_SGL only with the
 *   buffer they describe, PREHASHED only on SIGN/VERIFY, HASH_INIT only on
 *   HASH_UPDATE/HASH_FINAL), src_nsge/dst_nsge
 *   without the matching SGL flag, and the unused parts of iv/cdw[].
 * - Buffers: flat (address, length) or, with HSM_SQE_F_SRC_SGL/DST_SGL, an
 *   array of src_nsge/dst_nsge struct hsm_sge (1..max_sge entries, each
 *   len > 0 and rsvd 0; source entries add up to src_len exactly,
 *   destination entries to at least dst_len), else HSM_SC_INVALID_SGL.
 *   A list or data range the host cannot reach: HSM_SC_DATA_XFER.
 *   src_len/dst_len above max_xfer (1 MiB): HSM_SC_INVALID_LENGTH.
 * - result: bytes written to dst unless stated otherwise.  A destination
 *   that is too small gives HSM_SC_BUFFER_TOO_SMALL with result = bytes
 *   needed, before any work is done (for ECDSA the maximum signature size,
 *   for OAEP decryption the actual plaintext size).  On any other error
 *   result is 0 and nothing is written to dst.
 * - Checks run in this order, so the first applicable status wins:
 *   reserved fields, mechanism, key handle (HSM_SC_TAMPERED once tampered,
 *   else HSM_SC_INVALID_HANDLE), key type (HSM_SC_KEY_TYPE), allowed use
 *   (HSM_SC_USE_DENIED), key size, lengths, dst capacity, DMA.
 *
 * Admin queue:
 *   IDENTIFY      dst (>= 4096 bytes): struct hsm_identify; result 4096.
 *   CREATE_IOQ    cdw[0] qid 1..max_ioq (INVALID_QID), cdw[1] size - 1 with
 *                 size in 2..max_qsize (INVALID_QSIZE), cdw[2] MSI-X vector
 *                 2..nr_vectors-1 (INVALID_VECTOR), src = SQ, dst = CQ base,
 *                 non-zero and 4 KiB aligned (INVALID_FIELD), no lengths.
 *                 An existing qid is refused by the device (INVALID_QID).
 *   DELETE_IOQ    cdw[0] qid 1..max_ioq.
 *   GET_RANDOM    dst: dst_len (1..max_xfer) bytes from the DRBG.
 *   KEY_GENERATE  src = struct hsm_key_attrs (exactly 128 bytes); result =
 *                 handle.  handle/created must be 0, rsvd 0, label
 *                 NUL-terminated and NUL-padded, partition existing
 *                 (0 and 1 always; 2..15 after PART_CREATE), flags
 *                 within HSM_KEYF_ALL, uses within the type's (AES:
 *                 ENCRYPT DECRYPT WRAP UNWRAP; HMAC, EC, Ed25519: SIGN
 *                 VERIFY; RSA: SIGN VERIFY ENCRYPT DECRYPT; AUTHENC:
 *                 ENCRYPT DECRYPT; DERIVE: none), else INVALID_FIELD.
 *                 uses 0 = ENCRYPT|DECRYPT for AES and AUTHENC, SIGN|VERIFY
 *                 otherwise (VERIFY for a public-only RSA key).  bits: AES
 *                 128/192/256/512 (512 = AES-256-XTS; 256 also serves
 *                 AES-128-XTS), HMAC 128..1024 in steps of 8 (0 = 256),
 *                 RSA 2048/3072/4096 (e = 65537),
 *                 P-256 256, P-384 384, Ed25519 256 (0 = that size), else
 *                 INVALID_KEY_SIZE.  PERSISTENT needs a key store and
 *                 excludes SESSION (INVALID_FIELD).  Full: KEYSTORE_FULL.
 *                 AUTHENC: KEY_TYPE (import only).
 *   KEY_IMPORT    src = attrs || clear key (src_len >= 128): raw bytes for
 *                 AES/HMAC (bits 0 = length x 8, else must match), DER
 *                 PKCS#8 PrivateKeyInfo for RSA/EC/Ed25519 (INVALID_FIELD if
 *                 malformed or the halves do not match, KEY_TYPE if another
 *                 algorithm or curve).  Always a session key (SESSION
 *                 forced, PERSISTENT refused).  An XTS key with equal
 *                 halves: INVALID_FIELD.  Sizes and forms beyond what the
 *                 card generates, for the kernel's setkey:
 *                 HMAC 0..HSM_HMAC_IMPORT_MAX bytes (longer than the block
 *                 is hashed first, RFC 2104); RSA also as PKCS#1
 *                 RSAPrivateKey or RSAPublicKey, 512..4096-bit modulus; a
 *                 public-only key allows ENCRYPT/VERIFY only (uses 0 =
 *                 VERIFY, more: INVALID_FIELD); AUTHENC = struct
 *                 hsm_authenc_key_hdr || AES key || HMAC key, enc_len
 *                 16/24/32 and mac_len 0..HSM_HMAC_IMPORT_MAX
 *                 (INVALID_KEY_SIZE), lengths adding up exactly
 *                 (INVALID_LENGTH), rsvd 0 (INVALID_FIELD), bits 0 or
 *                 enc_len x 8.
 *                 KEY_UNWRAP keeps the generation sizes and forms.
 *   KEY_UNWRAP    handle = AES-128/192/256 key with USE_UNWRAP, mech 0 or
 *                 AES_KWP, src = attrs || RFC 5649 blob (>= 16 bytes, a
 *                 multiple of 8); payload as for KEY_IMPORT.  Integrity
 *                 failure: DECRYPT_FAILED.  attrs.partition must be the
 *                 unwrapping key's (INVALID_HANDLE).  result = handle.
 *   KEY_WRAP      handle = key to export (EXTRACTABLE, else
 *                 NOT_EXTRACTABLE), qw[0] = AES key with USE_WRAP in the
 *                 same partition, mech 0 or AES_KWP; dst = RFC 5649 blob of
 *                 the raw key or its PKCS#8; result = blob length.
 *                 AUTHENC and public-only RSA keys: KEY_TYPE; imported
 *                 keys of sizes KEY_GENERATE would refuse:
 *                 INVALID_KEY_SIZE (KEY_UNWRAP could not take them back).
 *   KEY_EXPORT_PUB handle; dst = DER SubjectPublicKeyInfo.  AES/HMAC:
 *                 KEY_TYPE.
 *   KEY_DESTROY   handle.  Commands already running on the key finish; the
 *                 material is wiped when the last one is done.
 *   KEY_LIST      cdw[0] partition, aux = how many of the partition's keys
 *                 to skip, dst = room for dst_len / 8 __le64 handles (0 is
 *                 fine); result = (keys in partition << 32) | written.
 *   KEY_GET_ATTRS handle; dst = struct hsm_key_attrs (128 bytes).
 *   TOKEN_CREATE  handle = persistent AES key (KEY_TYPE for other types,
 *                 INVALID_FIELD for session or volatile keys); dst (>= 80
 *                 bytes) = struct hsm_key_token with HMAC-SHA-256 under the
 *                 token key over its first 48 bytes; result = 80.
 *   TOKEN_OPEN    src = token (src_len 80, else INVALID_LENGTH); bad magic,
 *                 version or non-zero rsvd*: INVALID_FIELD; another card_id,
 *                 bad MAC (constant-time compare), or a handle that no
 *                 longer names a persistent key of the token's type and
 *                 bits: INVALID_TOKEN.  result = handle.  The token key is
 *                 HMAC-SHA-256(master key, label), so tokens survive a
 *                 restart on the same store; without a store it is random
 *                 per card instance.
 *   AUDIT_READ    qw[0] = first seq; dst = struct hsm_audit_read_hdr and
 *                 records, dst_len = 64 + n x 256 (n >= 1, <= max_xfer,
 *                 else INVALID_LENGTH); seq > last + 1: INVALID_FIELD;
 *                 result = records written.
 *   AUDIT_PUBKEY  dst = DER SubjectPublicKeyInfo of the audit key (P-256);
 *                 TAMPERED while the card has none.
 *   AUDIT_CHECKPOINT  no fields; result = seq of the signed record.
 *   Every key and token command above is recorded in the audit log when
 *   it succeeds or is refused for a custody reason, before it completes;
 *   if the record cannot be written the command fails with INTERNAL (and a
 *   key it created is taken back).  See hsm_fw_audit.c and hw.rst.
 *
 * I/O queues (handle = key; uses checked on every command):
 *   ENCRYPT/DECRYPT (USE_ENCRYPT / USE_DECRYPT)
 *     AES_ECB, AES_CBC  length a multiple of 16, no padding; CBC iv = IV,
 *                       ECB iv must be 0.
 *     AES_CTR           any length; iv = 128-bit big-endian counter block.
 *     AES_XTS           256- or 512-bit key, length >= 16 (ciphertext
 *                       stealing), iv = tweak.
 *     AES_GCM           iv[0..11] nonce (iv[12..15] 0), mparam = tag length
 *                       4..16 (0 = 16), aux = AAD length; src = AAD || data
 *                       (|| tag to decrypt); encrypt dst = ciphertext ||
 *                       tag, decrypt dst = plaintext; bad tag:
 *                       VERIFY_FAILED, nothing written.
 *     RSA_OAEP          mparam = SHA256/384/512 (MGF1 the same), encrypt
 *                       src <= k - 2h - 2 bytes, decrypt src = k bytes; bad
 *                       padding: DECRYPT_FAILED.
 *     RSA_RAW           src = 1..k bytes, a big-endian integer below n
 *                       (else INVALID_FIELD); dst = k bytes, left-padded;
 *                       encrypt = public operation (public-only keys too),
 *                       decrypt = private operation.
 *     AES_CBC_HMAC_SHA256  AUTHENC key; iv = CBC IV, aux = AAD length,
 *                       mparam = tag length 0..32 (0: no tag); data a
 *                       multiple of 16 (0 allowed); encrypt src = AAD ||
 *                       plaintext, dst = ciphertext || HMAC-SHA-256(AAD ||
 *                       ciphertext) truncated; decrypt src = AAD ||
 *                       ciphertext || tag, dst = plaintext; tag compared
 *                       in constant time first: VERIFY_FAILED, nothing
 *                       written.
 *     mparam/aux only where stated above (else INVALID_FIELD).
 *   DIGEST      mech SHA256/384/512, no handle, src may be empty.
 *   MAC         mech HMAC_SHA256/384/512, HMAC key with USE_SIGN, src of
 *               1..max_xfer bytes; dst = MAC.
 *   MAC_VERIFY  as MAC with USE_VERIFY; dst/dst_len (input) = expected
 *               MAC, truncated to no less than half the digest size;
 *               constant-time compare; mismatch: VERIFY_FAILED.
 *   SIGN        (USE_SIGN) RSA_PKCS1 and RSA_PSS (aux = salt length, at most
 *               k - h - 2) with an RSA key, ECDSA (DER signature) with a
 *               P-256/P-384 key, all with mparam = SHA256/384/512;
 *               EDDSA (pure Ed25519, 64 bytes) with mparam 0.
 *               HSM_SQE_F_PREHASHED: src is the mparam digest (exact size;
 *               not with EDDSA).  dst must hold the maximum signature size
 *               (k bytes for RSA, 72/104 for ECDSA, 64 for Ed25519).
 *               RSA_PKCS1 with a key too small for DigestInfo and padding
 *               (h + 30 > k, imported small keys): INVALID_KEY_SIZE.
 *   VERIFY      as SIGN with USE_VERIFY; dst/dst_len (input, 1..maximum
 *               signature size) = signature; result 0; VERIFY_FAILED.
 *   GET_RANDOM  as on the admin queue.
 *   HASH_UPDATE / HASH_FINAL  mech SHA256/384/512 (handle 0, else
 *               INVALID_FIELD) or HMAC_SHA256/384/512 (HMAC key with
 *               USE_SIGN); qw[0] = address of the HSM_HASH_STATE_SIZE blob
 *               (0: INVALID_FIELD; not used by FINAL with HASH_INIT), qw[1],
 *               mparam, aux 0; src 0..max_xfer bytes (SGL allowed).
 *               HSM_SQE_F_HASH_INIT starts afresh, else the blob must be
 *               one this card instance sealed for this mech and handle
 *               (INVALID_STATE otherwise; see hsm_fw_hash.c for the
 *               layout).  UPDATE: dst 0, blob rewritten, result 0.  FINAL:
 *               dst_len >= digest size (BUFFER_TOO_SMALL), dst = digest or
 *               MAC, blob untouched, result = digest size.
 *
 * Tamper: every key is dropped from the store and wiped (keys in use by a
 * running command are wiped when it ends), the master key and the sealed
 * store are overwritten and removed, the token key is wiped and the hash
 * state key replaced (older blobs: INVALID_STATE); afterwards every command
 * that names or creates a key (HMAC hashes, tokens included) returns
 * HSM_SC_TAMPERED.  IDENTIFY, queue management, GET_RANDOM, DIGEST and
 * plain multi-part digests keep working.  The audit log survives: tamper
 * is recorded and signed, then the audit key is wiped; the next start on
 * the wiped store makes a new key and continues the chain.  The partition
 * table and every PIN hash go with the store; CARD_INIT (no current PIN
 * needed then) clears the tamper flag, and with it CSTS.TAMPER and
 * HEALTH, which the device reads through hsm_fw_tampered().
 *
 * Partitions: the key's partition is part of its handle (see above).  The
 * card checks that both keys of WRAP/UNWRAP share a partition; which
 * partition a host user may name is for the driver to enforce, using
 * HSM_HANDLE_PART().
 *
 * Partitions, roles and PINs (hsm_fw_auth.c; hw.rst "Partitions, roles
 * and PINs" has the full rules):
 *   CARD_INIT     src = struct hsm_auth_req: new_pin = admin PIN, pin =
 *                 current one (ignored while none is set).  Destroys every
 *                 key and partition above 1, new master, token, state and
 *                 audit keys; clears tamper.
 *   PART_CREATE   admin PIN, partition 2..15 or HSM_PART_ANY, label
 *                 (unique), new_pin = SO PIN, max_fail; result = partition.
 *   PART_DELETE   admin PIN, partition 2..15 (keys destroyed, persistent
 *                 too; result = how many) or 0 with HSM_AUTH_F_RESET.
 *   PART_INFO     cdw[0] partition; dst = struct hsm_part_info.
 *   LOGIN         partition, role SO/USER, pin: SUCCESS, PIN_INCORRECT
 *                 (result = tries left), PIN_LOCKED, PIN_NOT_SET.
 *   SET_PIN       role, auth_role, pin, new_pin: own PIN, SO -> User PIN,
 *                 admin -> SO PIN (those two unlock).
 *   Failed-login counters are sealed in the store before completion.
 */

struct hsm_fw;

/**
 * struct hsm_fw_config - static configuration of one card
 * @serial:        serial number reported by IDENTIFY (copied)
 * @keystore_path: backing file of the persistent key store, or NULL (no
 *                 persistent keys, audit log in memory); "<path>.mk" holds
 *                 its master key, "<path>.gen" the store generation
 *                 counter, "<path>.audit" the audit log
 * @max_ioq:       I/O queue pairs the card offers (1..HSM_MAX_IOQ)
 * @max_qsize:     entries per queue (HSM_MIN_QSIZE..HSM_MAX_QSIZE)
 * @max_keys:      key store capacity
 * @nr_vectors:    MSI-X vectors the device exposes
 * @pin_iterations: PBKDF2 iterations of new PIN hashes (0: the default,
 *                 about 30 ms per check; tests use fewer)
 * @audit_high_water: audit records appended since the host last read the
 *                 log to its end at which the card signals the host (0:
 *                 HSM_FW_AUDIT_HIGH_WATER)
 * @audit_event:   called once each time that count reaches
 *                 @audit_high_water, or NULL.  It runs on whichever thread
 *                 appended the record (a worker, the admin worker, or the
 *                 caller of hsm_fw_new() or hsm_fw_tamper()) with the
 *                 log's lock held: it must only note the fact and return,
 *                 never call into the core.
 * @opaque:        passed to @audit_event
 */
struct hsm_fw_config {
	const char *serial;
	const char *keystore_path;
	unsigned int max_ioq;
	unsigned int max_qsize;
	unsigned int max_keys;
	unsigned int nr_vectors;
	unsigned int pin_iterations;
	uint32_t audit_high_water;
	void (*audit_event)(void *opaque);
	void *opaque;
};

/*
 * Default audit high-water mark: 3/4 of the ring a card without a key
 * store keeps (4096 records), so the host can still read everything before
 * the ring drops records.  The same mark serves a file-backed log.
 */
#define HSM_FW_AUDIT_HIGH_WATER		3072

/**
 * struct hsm_fw_host - what the core needs from the device around it
 * @opaque:     passed back to every callback
 * @dma_read:   copy @len bytes of host (guest) memory at @addr into @buf;
 *              returns 0, or -1 if any byte is not ordinary RAM
 * @dma_write:  copy @buf to host memory at @addr; 0 or -1 as above
 * @create_ioq: bring up I/O queue pair @qid (already validated by the core
 *              against the configuration); returns an HSM_SC_* status
 * @delete_ioq: tear down I/O queue pair @qid; returns an HSM_SC_* status
 *
 * The DMA callbacks may be called from several worker threads at once.
 */
struct hsm_fw_host {
	void *opaque;
	int (*dma_read)(void *opaque, uint64_t addr, void *buf, size_t len);
	int (*dma_write)(void *opaque, uint64_t addr, const void *buf,
			 size_t len);
	uint16_t (*create_ioq)(void *opaque, uint16_t qid, uint64_t sq_addr,
			       uint64_t cq_addr, uint32_t qsize,
			       uint16_t vector);
	uint16_t (*delete_ioq)(void *opaque, uint16_t qid);
};

/* Create a card; NULL on failure with a message in *errp (free() it). */
struct hsm_fw *hsm_fw_new(const struct hsm_fw_config *cfg, char **errp);
void hsm_fw_free(struct hsm_fw *fw);
/*
 * A clean stop: seal the audit log's head into the key store, so that the
 * next start finds every record written so far (records appended later
 * are covered by the next seal or checkpoint).  Safe beside running
 * commands; hsm_fw_free() does it too.
 */
void hsm_fw_stop(struct hsm_fw *fw);

/*
 * Execute one admin-queue or I/O-queue command.  The entry has already been
 * copied out of guest memory.  Returns an HSM_SC_* status; *result receives
 * the completion's result field.  Thread safe: I/O commands run concurrently
 * on the device's worker threads, admin commands on the device's admin worker thread, one at a time.
 */
uint16_t hsm_fw_admin(struct hsm_fw *fw, const struct hsm_fw_host *host,
		      const struct hsm_sqe *sqe, uint64_t *result);
uint16_t hsm_fw_io(struct hsm_fw *fw, const struct hsm_fw_host *host,
		   const struct hsm_sqe *sqe, uint64_t *result);

/*
 * Tamper: zeroize all keys, the master key and the PIN hashes; key commands
 * then fail until the admin queue runs HSM_ADM_CARD_INIT, which clears it.
 */
void hsm_fw_tamper(struct hsm_fw *fw);
bool hsm_fw_tampered(const struct hsm_fw *fw);

/*
 * HSM_AUDIT_F_* state of the audit log (DAMAGED: the start-up check found
 * the log damaged), for the device's health reporting.
 */
uint32_t hsm_fw_audit_flags(struct hsm_fw *fw);

/*
 * Audit records appended since an AUDIT_READ last reached the newest one
 * (saturating), and the high-water mark in use; for the device's
 * HSM_REG_AUDIT_UNREAD and HSM_REG_AUDIT_HWM.  Lock-free: they may be
 * read on any thread, at any time after hsm_fw_new() returned.
 */
uint32_t hsm_fw_audit_unread(const struct hsm_fw *fw);
uint32_t hsm_fw_audit_high_water(const struct hsm_fw *fw);

/* Human readable name of a status code, for logs and tests. */
const char *hsm_fw_status_str(uint16_t status);

#endif /* HSM_FW_H */
