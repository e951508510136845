/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * hsmcard: user-space interface of the hsmcard PCIe HSM driver.
 *
 * Every card is a character device /dev/hsmcardN.  All requests are
 * ioctl()s taking a fixed-size structure; user buffers are passed as __u64
 * pointers so that the layout is identical for 32-bit and 64-bit callers.
 * Reserved fields and unknown flags must be zero (-EINVAL otherwise).
 * Documentation/hsmcard/uapi.rst describes the semantics and the errno
 * returned for every card status.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef _UAPI_LINUX_HSMCARD_H
#define _UAPI_LINUX_HSMCARD_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define HSMCARD_IOC_MAGIC	'H'

/* Mechanisms (values are the card's). */
enum hsmcard_mech {
	HSMCARD_MECH_NONE		= 0,
	HSMCARD_MECH_AES_ECB		= 1,
	HSMCARD_MECH_AES_CBC		= 2,	/* no padding */
	HSMCARD_MECH_AES_CTR		= 3,	/* 128-bit BE counter in iv */
	HSMCARD_MECH_AES_XTS		= 4,	/* tweak in iv */
	HSMCARD_MECH_AES_GCM		= 5,	/* nonce in iv[0..11] */
	HSMCARD_MECH_SHA256		= 16,
	HSMCARD_MECH_SHA384		= 17,
	HSMCARD_MECH_SHA512		= 18,
	HSMCARD_MECH_HMAC_SHA256	= 24,
	HSMCARD_MECH_HMAC_SHA384	= 25,
	HSMCARD_MECH_HMAC_SHA512	= 26,
	HSMCARD_MECH_RSA_PKCS1		= 32,	/* mparam: hash mechanism */
	HSMCARD_MECH_RSA_PSS		= 33,	/* mparam: hash, salt_len */
	HSMCARD_MECH_RSA_OAEP		= 34,	/* mparam: hash (and MGF1) */
	HSMCARD_MECH_RSA_RAW		= 35,
	HSMCARD_MECH_ECDSA		= 40,	/* mparam: hash; DER signature */
	HSMCARD_MECH_EDDSA		= 41,	/* Ed25519 pure, 64-byte sig */
	HSMCARD_MECH_AES_KWP		= 48,	/* RFC 5649 */
	HSMCARD_MECH_MAX		= 64,
};

/* Key types (values are the card's). */
enum hsmcard_key_type {
	HSMCARD_KEY_AES			= 1,
	HSMCARD_KEY_HMAC		= 2,
	HSMCARD_KEY_RSA			= 3,
	HSMCARD_KEY_EC_P256		= 4,
	HSMCARD_KEY_EC_P384		= 5,
	HSMCARD_KEY_ED25519		= 6,
	HSMCARD_KEY_AUTHENC		= 7,	/* kernel crypto API only */
	HSMCARD_KEY_TYPE_MAX		= 8,
};

/* Allowed uses of a key (struct hsmcard_key_attrs.uses). */
#define HSMCARD_USE_ENCRYPT		0x1U
#define HSMCARD_USE_DECRYPT		0x2U
#define HSMCARD_USE_SIGN		0x4U
#define HSMCARD_USE_VERIFY		0x8U
#define HSMCARD_USE_WRAP		0x10U
#define HSMCARD_USE_UNWRAP		0x20U
#define HSMCARD_USE_DERIVE		0x40U
#define HSMCARD_USE_ALL			0x7fU

/* Key flags (struct hsmcard_key_attrs.flags). */
#define HSMCARD_KEYF_EXTRACTABLE	0x1U
#define HSMCARD_KEYF_SESSION		0x2U
#define HSMCARD_KEYF_PERSISTENT		0x4U
#define HSMCARD_KEYF_SENSITIVE		0x8U
#define HSMCARD_KEYF_ALL		0xfU

/* Key partitions: user space owns partition 0; 1 belongs to the kernel. */
#define HSMCARD_PARTITION_USER		0
#define HSMCARD_PARTITION_KERNEL	1
/* More partitions: HSMCARD_IOC_PART_CREATE and HSMCARD_IOC_LOGIN below. */

#define HSMCARD_LABEL_LEN		64
#define HSMCARD_KEY_ID_LEN		32	/* application key ID */

/* Driver's view of the card (struct hsmcard_info.state, sysfs "state"). */
enum hsmcard_state {
	HSMCARD_STATE_LIVE		= 0,	/* commands accepted */
	HSMCARD_STATE_RESETTING		= 1,	/* controller being reset */
	HSMCARD_STATE_TAMPERED		= 2,	/* zeroized: no key commands */
	HSMCARD_STATE_DEAD		= 3,	/* failed: no commands */
};

/**
 * struct hsmcard_info - HSMCARD_IOC_INFO
 * @flags:         in: must be 0
 * @state:         out: enum hsmcard_state
 * @serial:        out: NUL-terminated serial number
 * @model:         out: NUL-terminated model name
 * @fw_version:    out: NUL-terminated firmware revision
 * @card_id:       out: random identifier, stable for the card's life
 * @hw_version:    out: interface version (major << 16 | minor << 8)
 * @nr_queues:     out: I/O queue pairs the driver uses
 * @max_ioq:       out: I/O queue pairs the card supports
 * @max_qsize:     out: entries per queue the card supports
 * @max_xfer:      out: largest buffer (bytes) of one request
 * @max_sge:       out: scatter-gather entries per buffer
 * @max_keys:      out: key store capacity
 * @nr_keys:       out: keys currently held (all partitions)
 * @nr_partitions: out: key partitions
 * @key_types:     out: bit n set: enum hsmcard_key_type n supported
 * @mechs:         out: bit n set: enum hsmcard_mech n supported
 * @rsvd:          out: zero
 */
struct hsmcard_info {
	__u32	flags;
	__u32	state;
	char	serial[32];
	char	model[32];
	char	fw_version[16];
	__u8	card_id[16];
	__u32	hw_version;
	__u32	nr_queues;
	__u32	max_ioq;
	__u32	max_qsize;
	__u32	max_xfer;
	__u32	max_sge;
	__u32	max_keys;
	__u32	nr_keys;
	__u32	nr_partitions;
	__u32	key_types;
	__u64	mechs;
	__u64	rsvd[4];
};

/**
 * struct hsmcard_key_attrs - attributes of a key
 * @handle:    out: opaque key handle (in for HSMCARD_IOC_KEY_ATTRS via
 *             struct hsmcard_key_get_attrs); must be 0 on input otherwise
 * @type:      enum hsmcard_key_type
 * @bits:      key size in bits (AES: 128/192/256, 512 = XTS double key;
 *             HMAC: 128..1024; RSA: 2048/3072/4096; EC/Ed25519: 0 or the
 *             curve size)
 * @uses:      HSMCARD_USE_*; 0 selects the card's default for the type
 * @flags:     HSMCARD_KEYF_*
 * @partition: 0 (the file's partition) or the file's partition number;
 *             the kernel partition: -EPERM
 * @created:   out: creation time, seconds since the epoch; 0 on input
 * @label:     NUL-terminated, NUL-padded label; a non-empty label names
 *             one key family per partition (-EEXIST if in use)
 * @state:     enum hsmcard_key_state; in: 0 (ACTIVE) or
 *             HSMCARD_KEY_STATE_PRE_ACTIVE
 * @id_len:    bytes of @id, 0..HSMCARD_KEY_ID_LEN; 0: no key ID
 * @version:   out: version within the label's family (KEY_ROTATE), from 1
 * @activated: out: when the key became ACTIVE (seconds since the epoch),
 *             0 if never
 * @deactivated: out: when it became DEACTIVATED or COMPROMISED, 0 if not
 * @rsvd:      must be zero
 * @id:        application-chosen key ID (like PKCS#11 CKA_ID), @id_len
 *             bytes, zero past them (else -EINVAL); a non-empty ID is
 *             unique among all keys of the partition (-EEXIST if in use)
 */
struct hsmcard_key_attrs {
	__u64	handle;
	__u16	type;
	__u16	bits;
	__u32	uses;
	__u32	flags;
	__u32	partition;
	__u64	created;
	char	label[HSMCARD_LABEL_LEN];
	__u16	state;
	__u16	id_len;
	__u32	version;
	__u64	activated;
	__u64	deactivated;
	__u64	rsvd;
	__u8	id[HSMCARD_KEY_ID_LEN];
};

/*
 * Key lifecycle (Documentation/hsmcard/uapi.rst, "Key lifecycle"):
 * PRE_ACTIVE keys do nothing, ACTIVE keys what their uses allow,
 * DEACTIVATED and COMPROMISED keys only decrypt and verify (old data);
 * COMPROMISED keys are never exported.  States only move forward.
 */
enum hsmcard_key_state {
	HSMCARD_KEY_STATE_PRE_ACTIVE	= 1,
	HSMCARD_KEY_STATE_ACTIVE	= 2,
	HSMCARD_KEY_STATE_DEACTIVATED	= 3,
	HSMCARD_KEY_STATE_COMPROMISED	= 4,
};

/**
 * struct hsmcard_key_set_state - HSMCARD_IOC_KEY_SET_STATE
 * @handle:    in: key handle (the file's partition)
 * @state:     in: the new state: ACTIVE (from PRE_ACTIVE), DEACTIVATED
 *             (from PRE_ACTIVE or ACTIVE) or COMPROMISED (from any other);
 *             anything else -EKEYEXPIRED (not allowed) or -EINVAL
 * @old_state: out: the state before
 * @flags:     in: must be 0
 * @rsvd:      must be zero
 */
struct hsmcard_key_set_state {
	__u64	handle;
	__u32	state;
	__u32	old_state;
	__u32	flags;
	__u32	rsvd;
};

/**
 * struct hsmcard_key_rotate - HSMCARD_IOC_KEY_ROTATE
 * @handle: in: an ACTIVE key the card generated (the file's partition)
 * @flags:  in: must be 0
 * @id_len: in: 0: the new version has no key ID; 1..HSMCARD_KEY_ID_LEN:
 *          it gets the ID in @id (-EEXIST if in use in the partition)
 * @rsvd:   must be zero
 * @id:     in: the new version's key ID, zero past @id_len
 * @attrs:  out: the new version's attributes (same type, size, uses,
 *          flags and label, version + 1, ACTIVE); the old key is now
 *          DEACTIVATED and keeps its own ID
 */
struct hsmcard_key_rotate {
	__u64	handle;
	__u32	flags;
	__u16	id_len;
	__u16	rsvd;
	__u8	id[HSMCARD_KEY_ID_LEN];
	struct hsmcard_key_attrs attrs;
};

/* struct hsmcard_key_find.flags */
#define HSMCARD_FIND_F_ID	0x1u	/* by key ID, not by label */
#define HSMCARD_FIND_F_ALL	0x1u

/**
 * struct hsmcard_key_find - HSMCARD_IOC_KEY_FIND
 * @label:   in: NUL-terminated, NUL-padded, non-empty label; all zero
 *           with HSMCARD_FIND_F_ID
 * @version: in: the version wanted, 0 for the newest; 0 with
 *           HSMCARD_FIND_F_ID
 * @flags:   in: 0 (by label) or HSMCARD_FIND_F_ID (by key ID)
 * @id_len:  in: HSMCARD_FIND_F_ID: bytes of @id, 1..HSMCARD_KEY_ID_LEN;
 *           else 0
 * @rsvd0:   must be zero
 * @rsvd:    must be zero
 * @id:      in: HSMCARD_FIND_F_ID: the key ID, zero past @id_len; else
 *           all zero
 * @attrs:   out: the key's attributes (-ENOKEY: no such key in the file's
 *           partition)
 */
struct hsmcard_key_find {
	char	label[HSMCARD_LABEL_LEN];
	__u32	version;
	__u32	flags;
	__u16	id_len;
	__u16	rsvd0;
	__u32	rsvd;
	__u8	id[HSMCARD_KEY_ID_LEN];
	struct hsmcard_key_attrs attrs;
};

/**
 * struct hsmcard_key_import - HSMCARD_IOC_KEY_IMPORT
 * @attrs:   in: attributes as for generation; out: attributes of the key.
 *           The key becomes a volatile session key, except a
 *           key-encryption key (AES, uses a non-empty subset of
 *           HSMCARD_USE_WRAP | HSMCARD_USE_UNWRAP, not extractable),
 *           which may be HSMCARD_KEYF_PERSISTENT (key ceremony).
 * @key:     in: user pointer to the clear key (raw bytes for AES/HMAC,
 *           PKCS#8 DER PrivateKeyInfo for RSA/EC/Ed25519)
 * @key_len: in: bytes at @key (1..max_xfer - 160)
 * @flags:   in: must be 0
 */
struct hsmcard_key_import {
	struct hsmcard_key_attrs attrs;
	__u64	key;
	__u32	key_len;
	__u32	flags;
};

/**
 * struct hsmcard_key_wrap - HSMCARD_IOC_KEY_WRAP
 * @handle: in: the key to export; must be HSMCARD_KEYF_EXTRACTABLE
 * @kek:    in: AES key-encryption key with HSMCARD_USE_WRAP, in the same
 *          partition
 * @mech:   in: 0 or HSMCARD_MECH_AES_KWP (RFC 5649, the only one)
 * @rsvd0:  must be zero
 * @flags:  in: 0 or HSMCARD_WRAP_ATTRS (the blob also carries the key's
 *          attributes, see below)
 * @blob:   in: user pointer receiving the RFC 5649 blob of the raw key
 *          (AES, HMAC) or of its DER PKCS#8 PrivateKeyInfo (RSA, EC,
 *          Ed25519)
 * @len:    in: capacity of @blob (>= 1; clamped to max_xfer);
 *          out: bytes written, or bytes needed with -ENOSPC
 * @rsvd1:  must be zero
 * @rsvd:   must be zero
 */
/*
 * HSMCARD_IOC_KEY_WRAP / HSMCARD_IOC_KEY_UNWRAP flags.  HSMCARD_WRAP_ATTRS:
 * the RFC 5649 payload is "HSMKATT1" || le16 length || the key's
 * attributes as the card reports them || the key material
 * (Documentation/hsmcard/hw.rst), so that they cannot be changed without
 * the KEK.  The same keys can be exported with and without it.
 */
#define HSMCARD_WRAP_ATTRS		0x1U
#define HSMCARD_WRAP_FLAGS_ALL		0x1U

struct hsmcard_key_wrap {
	__u64	handle;
	__u64	kek;
	__u16	mech;
	__u16	rsvd0;
	__u32	flags;
	__u64	blob;
	__u32	len;
	__u32	rsvd1;
	__u64	rsvd[2];
};

/**
 * struct hsmcard_key_unwrap - HSMCARD_IOC_KEY_UNWRAP
 * @attrs: in: attributes of the new key as for generation (@bits 0 takes
 *         the size of the unwrapped material); out: the attributes the
 *         card recorded, with the new handle
 * @kek:   in: AES key-encryption key with HSMCARD_USE_UNWRAP, in the
 *         partition the new key goes to
 * @blob:  in: user pointer to an RFC 5649 blob as HSMCARD_IOC_KEY_WRAP
 *         makes it
 * @len:   in: bytes at @blob: a multiple of 8, 16..max_xfer - 160
 * @mech:  in: 0 or HSMCARD_MECH_AES_KWP
 * @rsvd0: must be zero
 * @flags: in: 0 or HSMCARD_WRAP_ATTRS (a blob made with that flag)
 * @rsvd1: must be zero
 * @rsvd:  must be zero
 *
 * With HSMCARD_WRAP_ATTRS the attributes inside the blob are the key's
 * (type, bits, uses, flags, label, state, version, times); @attrs may
 * only narrow them: @type, @bits and @state 0 or the blob's, @label empty
 * or the blob's, @uses 0 (the blob's) or a subset, @flags 0 (the blob's)
 * or the exact flags wanted: EXTRACTABLE and PERSISTENT may be dropped,
 * SENSITIVE added, SESSION must be the blob's.  Asking for more than the
 * blob holds fails with -EACCES (the card's audit log records it).
 * @attrs.partition chooses the partition as without the flag.
 */
struct hsmcard_key_unwrap {
	struct hsmcard_key_attrs attrs;
	__u64	kek;
	__u64	blob;
	__u32	len;
	__u16	mech;
	__u16	rsvd0;
	__u32	flags;
	__u32	rsvd1;
	__u64	rsvd[2];
};

/**
 * struct hsmcard_key_list - HSMCARD_IOC_KEY_LIST
 * @handles: in: user pointer to an array of @max __u64 handles
 * @max:     in: capacity of @handles (>= 1; clamped to max_xfer / 8)
 * @count:   out: handles stored
 * @cursor:  in: index of the first key to return (0 to start);
 *           out: cursor for the next call (@cursor + @count)
 * @total:   out: keys in the user partition
 * @flags:   in: must be 0
 * @rsvd:    must be zero
 */
struct hsmcard_key_list {
	__u64	handles;
	__u32	max;
	__u32	count;
	__u32	cursor;
	__u32	total;
	__u32	flags;
	__u32	rsvd;
};

/**
 * struct hsmcard_key_get_attrs - HSMCARD_IOC_KEY_ATTRS
 * @handle: in: key handle
 * @flags:  in: must be 0
 * @rsvd:   must be zero
 * @attrs:  out: the key's attributes (ignored on input)
 */
struct hsmcard_key_get_attrs {
	__u64	handle;
	__u32	flags;
	__u32	rsvd;
	struct hsmcard_key_attrs attrs;
};

/**
 * struct hsmcard_key_pubkey - HSMCARD_IOC_KEY_PUBKEY
 * @handle: in: handle of an RSA, EC or Ed25519 key
 * @buf:    in: user pointer receiving the DER SubjectPublicKeyInfo
 * @len:    in: capacity of @buf (>= 1; clamped to max_xfer);
 *          out: bytes written, or bytes needed with -ENOSPC
 * @flags:  in: must be 0
 */
struct hsmcard_key_pubkey {
	__u64	handle;
	__u64	buf;
	__u32	len;
	__u32	flags;
};

/**
 * struct hsmcard_key_handle - HSMCARD_IOC_KEY_DESTROY
 * @handle: in: key handle
 * @flags:  in: must be 0
 * @rsvd:   must be zero
 */
struct hsmcard_key_handle {
	__u64	handle;
	__u32	flags;
	__u32	rsvd;
};

/*
 * Key tokens for the kernel's token-keyed ciphers xts(paes) and cbc(paes)
 * (Documentation/hsmcard/crypto.rst).  A token names a persistent AES key
 * the card generated in the kernel partition; it holds no key material.
 * The layout is the card's struct hsm_key_token; user space treats it as
 * HSMCARD_TOKEN_SIZE opaque bytes (e.g. a dm-crypt key in hex).
 */
#define HSMCARD_TOKEN_SIZE		80

/*
 * Test-only clear-key token: accepted by xts(paes)/cbc(paes) setkey only
 * while the module parameter paes_clear_tokens is 1 (default 0), for
 * known-answer tests.  Same size as a card token; the key is imported as
 * a session key.  @key_len: 16, 24, 32 (cbc) or 32, 64 (xts); the rest of
 * @key and @rsvd must be zero.
 */
#define HSMCARD_CLEAR_TOKEN_MAGIC	0x4b4c4348U	/* "HCLK" little-endian */

struct hsmcard_clear_token {
	__u32	magic;		/* HSMCARD_CLEAR_TOKEN_MAGIC, little-endian */
	__u16	version;	/* 1, little-endian */
	__u16	key_len;	/* little-endian */
	__u8	key[64];
	__u8	rsvd[8];
};

/**
 * struct hsmcard_token_create - HSMCARD_IOC_TOKEN_CREATE
 * @bits:   in: AES key size: 128, 192, 256 (for cbc(paes)) or 256, 512
 *          (AES-128-XTS, AES-256-XTS for xts(paes))
 * @flags:  in: must be 0
 * @label:  in: NUL-terminated, NUL-padded label of the key (may be empty)
 * @handle: out: handle of the new key (kernel partition: for information,
 *          no other request accepts it); ignored on input
 * @token:  out: the token; ignored on input
 *
 * Generates a persistent, sensitive, non-extractable AES key (uses encrypt
 * and decrypt) in the kernel partition and returns a token for it.  Needs
 * CAP_SYS_ADMIN (-EPERM) and a card with a persistent key store
 * (-EOPNOTSUPP).
 */
struct hsmcard_token_create {
	__u32	bits;
	__u32	flags;
	char	label[HSMCARD_LABEL_LEN];
	__u64	handle;
	__u8	token[HSMCARD_TOKEN_SIZE];
};

/**
 * struct hsmcard_token - HSMCARD_IOC_TOKEN_INFO and HSMCARD_IOC_TOKEN_DESTROY
 * @token: in: a token made by HSMCARD_IOC_TOKEN_CREATE on this card
 * @flags: in: must be 0
 * @rsvd:  must be zero
 * @attrs: out (INFO): attributes of the key the token names; ignored on
 *         input
 *
 * INFO (any opener) checks the token with the card (-EINVAL if it is not
 * valid on this card, or its key is gone).  DESTROY destroys the key
 * (CAP_SYS_ADMIN, else -EPERM); every volume keyed by the token becomes
 * unreadable.
 */
struct hsmcard_token {
	__u8	token[HSMCARD_TOKEN_SIZE];
	__u32	flags;
	__u32	rsvd;
	struct hsmcard_key_attrs attrs;
};

/* struct hsmcard_op.flags */
#define HSMCARD_OP_F_PREHASHED		0x1U	/* sign/verify a digest */
#define HSMCARD_OP_F_ALL		0x1U

/**
 * struct hsmcard_op - one synchronous cryptographic operation
 * @handle:   in: key handle (0 for HSMCARD_IOC_DIGEST)
 * @mech:     in: enum hsmcard_mech
 * @mparam:   in: mechanism parameter: hash mechanism for RSA/ECDSA, tag
 *            length for AES-GCM (0 = 16), otherwise 0
 * @flags:    in: HSMCARD_OP_F_*
 * @in:       in: user pointer to the input (AES-GCM: AAD || data, plus the
 *            tag when decrypting)
 * @in_len:   in: bytes at @in (0..max_xfer; -E2BIG above)
 * @out_len:  in: capacity of @out (clamped to max_xfer), or for VERIFY and
 *            MAC_VERIFY the length of the signature/MAC at @out;
 *            out: bytes written, or bytes needed with -ENOSPC
 * @out:      in: user pointer to the output buffer (VERIFY, MAC_VERIFY:
 *            to the signature/MAC to check)
 * @aad_len:  in: AES-GCM only: bytes of AAD at the start of @in
 * @salt_len: in: RSA-PSS only: salt length in bytes
 * @iv:       in: IV, counter block, XTS tweak or GCM nonce; zero for
 *            mechanisms without one
 * @rsvd:     must be zero
 */
struct hsmcard_op {
	__u64	handle;
	__u16	mech;
	__u16	mparam;
	__u32	flags;
	__u64	in;
	__u32	in_len;
	__u32	out_len;
	__u64	out;
	__u32	aad_len;
	__u32	salt_len;
	__u8	iv[16];
	__u64	rsvd[2];
};

/**
 * struct hsmcard_random - HSMCARD_IOC_RANDOM
 * @buf:   in: user pointer receiving the random bytes
 * @len:   in: bytes wanted (1..max_xfer)
 * @flags: in: must be 0
 */
struct hsmcard_random {
	__u64	buf;
	__u32	len;
	__u32	flags;
};

/*
 * Generic netlink family "hsmcard" (Documentation/hsmcard/netlink.rst).
 *
 * HSMCARD_CMD_GET_CARD: a request with HSMCARD_A_CARD_INDEX returns that
 * card; a dump request returns every card.  Any user may ask.
 * HSMCARD_CMD_EVENT: sent to the multicast group "events" (joining needs
 * CAP_NET_ADMIN) for every event of every card, in order per card.
 */
#define HSMCARD_GENL_NAME		"hsmcard"
#define HSMCARD_GENL_VERSION		1
#define HSMCARD_GENL_MCGRP_EVENTS	"events"

enum hsmcard_genl_cmd {
	HSMCARD_CMD_UNSPEC,
	HSMCARD_CMD_GET_CARD,		/* reply: the card attributes below */
	HSMCARD_CMD_EVENT,		/* multicast: an event */
	__HSMCARD_CMD_MAX,
};

#define HSMCARD_CMD_MAX		(__HSMCARD_CMD_MAX - 1)

enum hsmcard_genl_attr {
	HSMCARD_A_UNSPEC,
	HSMCARD_A_PAD,
	HSMCARD_A_CARD_INDEX,		/* u32: the N of /dev/hsmcardN */
	HSMCARD_A_CARD_NAME,		/* string: "hsmcardN" */
	HSMCARD_A_PCI_ADDR,		/* string: PCI address */
	HSMCARD_A_SERIAL,		/* string */
	HSMCARD_A_CARD_ID,		/* binary, 16 bytes */
	HSMCARD_A_STATE,		/* u32: enum hsmcard_state */
	HSMCARD_A_RESETS,		/* u32: controller resets */
	HSMCARD_A_CMDS_SUBMITTED,	/* u64: commands sent, all queues */
	HSMCARD_A_CMDS_COMPLETED,	/* u64 */
	HSMCARD_A_CMD_ERRORS,		/* u64: completions with an error */
	HSMCARD_A_EVENT,		/* u32: enum hsmcard_event */
	HSMCARD_A_TIMESTAMP,		/* u64: ns since the epoch (CLOCK_REALTIME) */
	HSMCARD_A_KEY_HANDLE,		/* u64: key events */
	HSMCARD_A_EVENTS_LOST,		/* u32: events dropped before this one */
	HSMCARD_A_PARTITION,		/* u32: LOGIN_FAILED (not for the admin) */
	HSMCARD_A_ROLE,			/* u32: LOGIN_FAILED, enum hsmcard_role */
	HSMCARD_A_TRIES_LEFT,		/* u32: LOGIN_FAILED, wrong PIN */
	HSMCARD_A_LOCKED,		/* flag: LOGIN_FAILED, the role is locked */
	HSMCARD_A_PID,			/* u32: LOGIN_FAILED, caller's tgid */
	HSMCARD_A_UID,			/* u32: LOGIN_FAILED, caller's uid */
	HSMCARD_A_AUDIT_UNREAD,		/* u32: AUDIT_HIGH_WATER, records */
	HSMCARD_A_AUDIT_HIGH_WATER,	/* u32: AUDIT_HIGH_WATER, the mark */
	__HSMCARD_A_MAX,
};

#define HSMCARD_A_MAX		(__HSMCARD_A_MAX - 1)

enum hsmcard_event {
	HSMCARD_EVENT_CARD_ADDED	= 1,	/* bound and live */
	HSMCARD_EVENT_CARD_REMOVED	= 2,
	HSMCARD_EVENT_STATE		= 3,	/* HSMCARD_A_STATE changed */
	HSMCARD_EVENT_TAMPER		= 4,	/* card zeroized */
	HSMCARD_EVENT_HEALTH		= 5,	/* health warning from the card */
	HSMCARD_EVENT_KEY_CREATED	= 6,	/* generated, imported, unwrapped */
	HSMCARD_EVENT_KEY_DESTROYED	= 7,
	HSMCARD_EVENT_TOKEN_CREATED	= 8,	/* key token made (kernel key) */
	HSMCARD_EVENT_TOKEN_DESTROYED	= 9,
	HSMCARD_EVENT_LOGIN_FAILED	= 10,	/* a PIN was refused */
	HSMCARD_EVENT_AUDIT_HIGH_WATER	= 11,	/* audit log needs reading */
	HSMCARD_EVENT_KEY_STATE		= 12,	/* set-state, or rotated away */
};

/*
 * ---- Audit log (Documentation/hsmcard/uapi.rst, "Audit log") ----
 *
 * The card keeps a hash-chained, signed log of every management action and
 * every custody denial.  HSMCARD_IOC_AUDIT_READ hands out its records
 * unchanged, in the card's format (struct hsmcard_audit_rec, all integers
 * little endian), so that user space can verify them itself: the hash
 * chain, the sequence numbers and the ECDSA P-256 / SHA-256 signatures of
 * the checkpoint records, with the public key from
 * HSMCARD_IOC_AUDIT_PUBKEY.  Documentation/hsmcard/hw.rst, "Audit log",
 * has the rules.  All three audit ioctls need CAP_SYS_ADMIN for now.
 */
#define HSMCARD_AUDIT_REC_SIZE		256
#define HSMCARD_AUDIT_SIGNED_LEN	144	/* checkpoints sign bytes 0..143 */
#define HSMCARD_AUDIT_SIG_MAX		96
#define HSMCARD_AUDIT_NO_PART		0xffffffffU	/* card-wide record */

/* struct hsmcard_audit_rec.event */
enum hsmcard_audit_event {
	HSMCARD_AUDIT_EV_INIT		= 0x01,	/* new audit key */
	HSMCARD_AUDIT_EV_START		= 0x02,	/* card started on its store */
	HSMCARD_AUDIT_EV_CHECKPOINT	= 0x03,	/* signed record */
	HSMCARD_AUDIT_EV_LOG_DAMAGED	= 0x04,	/* start found the log damaged */
	HSMCARD_AUDIT_EV_TAMPER		= 0x05,
	HSMCARD_AUDIT_EV_KEY_GENERATE	= 0x10,
	HSMCARD_AUDIT_EV_KEY_IMPORT	= 0x11,
	HSMCARD_AUDIT_EV_KEY_UNWRAP	= 0x12,
	HSMCARD_AUDIT_EV_KEY_WRAP	= 0x13,
	HSMCARD_AUDIT_EV_KEY_DESTROY	= 0x14,
	HSMCARD_AUDIT_EV_TOKEN_CREATE	= 0x15,
	HSMCARD_AUDIT_EV_TOKEN_OPEN	= 0x16,	/* refused tokens only */
	HSMCARD_AUDIT_EV_KEY_STATE	= 0x17,	/* key lifecycle change */
	HSMCARD_AUDIT_EV_LOGIN		= 0x20,	/* reserved: 0x20..0x24 */
	HSMCARD_AUDIT_EV_LOGIN_FAIL	= 0x21,
	HSMCARD_AUDIT_EV_LOCKOUT	= 0x22,
	HSMCARD_AUDIT_EV_UNLOCK		= 0x23,
	HSMCARD_AUDIT_EV_LOGOUT		= 0x24,
	HSMCARD_AUDIT_EV_PART_CREATE	= 0x28,	/* reserved: 0x28..0x2a */
	HSMCARD_AUDIT_EV_PART_DELETE	= 0x29,
	HSMCARD_AUDIT_EV_PART_CHANGE	= 0x2a,
};

/* struct hsmcard_audit_read.log_flags */
#define HSMCARD_AUDIT_F_DAMAGED		0x1U	/* start found the log damaged */
#define HSMCARD_AUDIT_F_WRAPPED		0x2U	/* oldest records were dropped */
#define HSMCARD_AUDIT_F_NO_KEY		0x4U	/* tampered: no audit key */
#define HSMCARD_AUDIT_F_VOLATILE	0x8U	/* no key store: log in memory */
#define HSMCARD_AUDIT_F_ALL		0xfU

/**
 * struct hsmcard_audit_rec - one audit record, as the card wrote it
 * @seq:       sequence number (0 for the first record of a log, then +1)
 * @time_ns:   card time, ns since the epoch (CLOCK_REALTIME)
 * @event:     enum hsmcard_audit_event
 * @status:    the command's outcome: 0 or the card status that refused it
 * @partition: partition of the key concerned, HSMCARD_AUDIT_NO_PART if none
 * @handle:    the key concerned, or 0
 * @handle2:   the wrapping or unwrapping key, or 0
 * @detail:    key events: key type << 16 | bits; other events: see hw.rst
 * @opcode:    card admin opcode that caused the record, or 0
 * @rsvd0:     zero
 * @label:     key label (NUL padded); INIT, START, CHECKPOINT: card id
 *             (16 bytes), then the audit key id (SHA-256 of its DER
 *             SubjectPublicKeyInfo, 32 bytes)
 * @prev_hash: SHA-256 of the 256 bytes of the previous record
 * @sig_len:   bytes of @sig; 0 except in checkpoints
 * @rsvd1:     zero
 * @sig:       checkpoints: DER ECDSA signature over bytes 0..143, zero padded
 */
struct hsmcard_audit_rec {
	__le64	seq;
	__le64	time_ns;
	__le16	event;
	__le16	status;
	__le32	partition;
	__le64	handle;
	__le64	handle2;
	__le32	detail;
	__u8	opcode;
	__u8	rsvd0[3];
	char	label[HSMCARD_LABEL_LEN];
	__u8	prev_hash[32];
	__le16	sig_len;
	__u8	rsvd1[14];
	__u8	sig[HSMCARD_AUDIT_SIG_MAX];
};

/**
 * struct hsmcard_audit_read - HSMCARD_IOC_AUDIT_READ
 * @seq:        in: first sequence number wanted (at most @last_seq + 1)
 * @buf:        in: user pointer receiving whole struct hsmcard_audit_rec
 * @len:        in: capacity of @buf in bytes (>= HSMCARD_AUDIT_REC_SIZE;
 *              clamped to what one card command returns)
 * @flags:      in: must be 0
 * @first_seq:  out: seq of the first record returned (later than @seq if
 *              older records are gone)
 * @next_seq:   out: @seq of the next call
 * @last_seq:   out: the newest record of the card
 * @oldest_seq: out: the oldest record the card still holds
 * @count:      out: records stored at @buf
 * @log_flags:  out: HSMCARD_AUDIT_F_*
 * @rsvd:       in: must be zero; out: zero
 *
 * Output fields are ignored on input, so the same structure can be passed
 * again with @seq = @next_seq.
 */
struct hsmcard_audit_read {
	__u64	seq;
	__u64	buf;
	__u32	len;
	__u32	flags;
	__u64	first_seq;
	__u64	next_seq;
	__u64	last_seq;
	__u64	oldest_seq;
	__u32	count;
	__u32	log_flags;
	__u64	rsvd[2];
};

/**
 * struct hsmcard_audit_pubkey - HSMCARD_IOC_AUDIT_PUBKEY
 * @buf:   in: user pointer receiving the DER SubjectPublicKeyInfo of the
 *         card audit key (ECDSA P-256)
 * @len:   in: capacity of @buf (>= 1; clamped to max_xfer);
 *         out: bytes written, or bytes needed with -ENOSPC
 * @flags: in: must be 0
 */
struct hsmcard_audit_pubkey {
	__u64	buf;
	__u32	len;
	__u32	flags;
};

/**
 * struct hsmcard_audit_checkpoint - HSMCARD_IOC_AUDIT_CHECKPOINT
 * @seq:   out: sequence number of the signed checkpoint record the card
 *         appended; ignored on input
 * @flags: in: must be 0
 * @rsvd:  must be zero
 */
struct hsmcard_audit_checkpoint {
	__u64	seq;
	__u32	flags;
	__u32	rsvd;
};

/*
 * ---- Partitions, roles and PINs (Documentation/hsmcard/uapi.rst) ----
 *
 * A file descriptor starts logged out.  HSMCARD_IOC_LOGIN binds it to one
 * partition and role; a User of partition P may then name keys of P only,
 * an SO or admin login uses no key at all.  A logged-out file may use
 * partition 0 while partition 0 has no PIN (a factory card).  The kernel
 * partition (1) never accepts a login.  PINs are 4..64 bytes of any value.
 */
#define HSMCARD_NR_PARTITIONS_MAX	16
#define HSMCARD_PART_ANY		0xffffffffU	/* PART_CREATE: first free */
#define HSMCARD_PIN_MIN			4
#define HSMCARD_PIN_MAX			64

enum hsmcard_role {
	HSMCARD_ROLE_NONE		= 0,	/* not logged in */
	HSMCARD_ROLE_SO			= 1,	/* Security Officer */
	HSMCARD_ROLE_USER		= 2,
	HSMCARD_ROLE_ADMIN		= 3,	/* card administrator */
};

/**
 * struct hsmcard_login - HSMCARD_IOC_LOGIN
 * @partition:  in: partition (0 for %HSMCARD_ROLE_ADMIN)
 * @role:       in: enum hsmcard_role, SO, USER or ADMIN
 * @pin_len:    in: bytes of @pin (4..64)
 * @flags:      in: must be 0
 * @tries_left: out: wrong PINs left before the role locks (with -EACCES);
 *              ignored on input
 * @rsvd:       must be zero
 * @pin:        in: the PIN; bytes past @pin_len must be zero
 */
struct hsmcard_login {
	__u32	partition;
	__u16	role;
	__u16	pin_len;
	__u32	flags;
	__u32	tries_left;
	__u32	rsvd[4];
	__u8	pin[HSMCARD_PIN_MAX];
};

/**
 * struct hsmcard_set_pin - HSMCARD_IOC_SET_PIN
 * @partition:   in: partition (0 for the admin PIN)
 * @role:        in: whose PIN is set (enum hsmcard_role)
 * @auth_role:   in: whose PIN @pin is (0: @role itself)
 * @pin_len:     in: bytes of @pin
 * @new_pin_len: in: bytes of @new_pin
 * @flags:       in: must be 0
 * @tries_left:  out: as in struct hsmcard_login; ignored on input
 * @rsvd:        must be zero
 * @pin:         in: current PIN of @auth_role
 * @new_pin:     in: new PIN of @role
 */
struct hsmcard_set_pin {
	__u32	partition;
	__u16	role;
	__u16	auth_role;
	__u16	pin_len;
	__u16	new_pin_len;
	__u32	flags;
	__u32	tries_left;
	__u32	rsvd[3];
	__u8	pin[HSMCARD_PIN_MAX];
	__u8	new_pin[HSMCARD_PIN_MAX];
};

/* struct hsmcard_part_admin.flags */
#define HSMCARD_PART_F_RESET		0x1U	/* PART_DELETE of 0: reset it */

/**
 * struct hsmcard_part_admin - HSMCARD_IOC_PART_CREATE, HSMCARD_IOC_PART_DELETE
 * and HSMCARD_IOC_CARD_INIT (CAP_SYS_ADMIN and the admin PIN)
 * @partition:   in/out: partition; PART_CREATE: 2..15 or HSMCARD_PART_ANY,
 *               the partition made on return; CARD_INIT: 0
 * @max_fail:    in: PART_CREATE: wrong PINs that lock a role (1..15, 0: 5)
 * @flags:       in: HSMCARD_PART_F_RESET (PART_DELETE of partition 0)
 * @pin_len:     in: bytes of @pin, the admin PIN (CARD_INIT: ignored by
 *               the card while no admin PIN is set, but 0 or 4..64)
 * @new_pin_len: in: bytes of @new_pin: PART_CREATE the SO PIN,
 *               CARD_INIT the new admin PIN; PART_DELETE 0
 * @tries_left:  out: admin PIN tries left (with -EACCES); ignored on input
 * @result:      out: PART_DELETE: keys destroyed; ignored on input
 * @rsvd:        must be zero
 * @pin:         in: admin PIN
 * @new_pin:     in: see @new_pin_len
 * @label:       in: PART_CREATE: unique, non-empty, NUL padded
 */
struct hsmcard_part_admin {
	__u32	partition;
	__u16	max_fail;
	__u16	flags;
	__u16	pin_len;
	__u16	new_pin_len;
	__u32	tries_left;
	__u64	result;
	__u32	rsvd[2];
	__u8	pin[HSMCARD_PIN_MAX];
	__u8	new_pin[HSMCARD_PIN_MAX];
	char	label[HSMCARD_LABEL_LEN];
};

/* struct hsmcard_part_info.flags */
#define HSMCARD_PART_S_EXISTS		0x01U
#define HSMCARD_PART_S_INITIALIZED	0x02U	/* some PIN is set */
#define HSMCARD_PART_S_SO_SET		0x04U
#define HSMCARD_PART_S_USER_SET		0x08U
#define HSMCARD_PART_S_SO_LOCKED	0x10U
#define HSMCARD_PART_S_USER_LOCKED	0x20U
#define HSMCARD_PART_S_KERNEL		0x40U	/* partition 1: no login */

/* struct hsmcard_part_info.card_flags */
#define HSMCARD_CARD_S_ADMIN_SET	0x1U
#define HSMCARD_CARD_S_ADMIN_LOCKED	0x2U
#define HSMCARD_CARD_S_TAMPERED		0x4U

/**
 * struct hsmcard_part_info - HSMCARD_IOC_PART_INFO (no privilege)
 * @partition:    in: 0..15 (the other fields but @rsvd are ignored on input)
 * @flags:        out: HSMCARD_PART_S_*; 0: no such partition
 * @card_flags:   out: HSMCARD_CARD_S_*
 * @max_fail:     out: wrong PINs that lock a role
 * @so_failed:    out: consecutive wrong SO PINs
 * @user_failed:  out: consecutive wrong User PINs
 * @nr_keys:      out: keys in the partition
 * @admin_failed: out: consecutive wrong admin PINs
 * @rsvd0:        out: zero
 * @created:      out: creation time, seconds since the epoch
 * @rsvd:         in: must be zero; out: zero
 * @label:        out: NUL padded
 */
struct hsmcard_part_info {
	__u32	partition;
	__u32	flags;
	__u32	card_flags;
	__u16	max_fail;
	__u8	so_failed;
	__u8	user_failed;
	__u32	nr_keys;
	__u8	admin_failed;
	__u8	rsvd0[3];
	__u64	created;
	__u32	rsvd[8];
	char	label[HSMCARD_LABEL_LEN];
};

/*
 * ---- Command rings (Documentation/hsmcard/rings.rst) ----
 *
 * HSMCARD_IOC_RING_SETUP on /dev/hsmcardN pins and DMA-maps a buffer arena
 * of the caller's memory and returns a new file descriptor, the ring fd.
 * mmap() of the ring fd (offset 0, struct hsmcard_ring_setup.mmap_len
 * bytes, MAP_SHARED) shows a struct hsmcard_ring_hdr, the submission ring
 * at sq_off and the completion ring at cq_off.  Ring indices are free
 * running __u32 counters; the slot is index & (entries - 1).
 *
 * Memory ordering: user space writes SQ entries, then store-releases
 * sq_tail; the kernel load-acquires sq_tail, copies each entry once and
 * store-releases sq_head.  The kernel writes CQ entries, then
 * store-releases cq_tail; user space load-acquires cq_tail, reads the
 * entries and store-releases cq_head.
 */
#define HSMCARD_RING_MAX_ENTRIES	1024
#define HSMCARD_ARENA_MAX		(64U << 20)	/* bytes */

/**
 * struct hsmcard_ring_setup - HSMCARD_IOC_RING_SETUP
 * @entries:     in: SQ and CQ entries, a power of two in
 *               1..HSMCARD_RING_MAX_ENTRIES; also the most jobs in flight
 * @flags:       in: must be 0
 * @arena:       in: page-aligned user address of the buffer arena
 * @arena_len:   in: arena bytes, a multiple of the page size,
 *               1..HSMCARD_ARENA_MAX (counted against RLIMIT_MEMLOCK)
 * @sq_off:      out: offset of the SQ entries in the mapping
 * @cq_off:      out: offset of the CQ entries in the mapping
 * @mmap_len:    out: bytes to map
 * @fd:          out: the ring fd (close-on-exec)
 * @max_job_len: out: largest input or output length of one job
 * @rsvd:        in: must be zero; out: zero
 */
struct hsmcard_ring_setup {
	__u32	entries;
	__u32	flags;
	__u64	arena;
	__u64	arena_len;
	__u32	sq_off;
	__u32	cq_off;
	__u32	mmap_len;
	__s32	fd;
	__u32	max_job_len;
	__u32	rsvd[3];
};

/**
 * struct hsmcard_ring_hdr - start of the ring mapping
 * @sq_head:    kernel: SQ entries consumed
 * @sq_tail:    user: SQ entries written
 * @cq_head:    user: CQ entries consumed
 * @cq_tail:    kernel: CQ entries written
 * @sq_entries: kernel: SQ size
 * @cq_entries: kernel: CQ size
 * @rsvd:       zero
 *
 * The kernel keeps its own copy of sq_head, cq_tail and the sizes and never
 * trusts what user space writes here.
 */
struct hsmcard_ring_hdr {
	__u32	sq_head;
	__u32	sq_tail;
	__u32	cq_head;
	__u32	cq_tail;
	__u32	sq_entries;
	__u32	cq_entries;
	__u32	rsvd[10];
};

/* struct hsmcard_ring_sqe.opcode */
enum hsmcard_ring_op {
	HSMCARD_RING_OP_ENCRYPT		= 1,
	HSMCARD_RING_OP_DECRYPT		= 2,
	HSMCARD_RING_OP_DIGEST		= 3,
	HSMCARD_RING_OP_MAC		= 4,
	HSMCARD_RING_OP_MAC_VERIFY	= 5,	/* out: the MAC to check */
	HSMCARD_RING_OP_SIGN		= 6,
	HSMCARD_RING_OP_VERIFY		= 7,	/* out: the signature */
	HSMCARD_RING_OP_RANDOM		= 8,
	HSMCARD_RING_OP_MAX		= 9,
};

/* struct hsmcard_ring_sqe.flags */
#define HSMCARD_RING_F_PREHASHED	0x1U	/* sign/verify a digest */
#define HSMCARD_RING_F_ALL		0x1U

/**
 * struct hsmcard_ring_sqe - one job (64 bytes)
 * @opcode:  enum hsmcard_ring_op
 * @flags:   HSMCARD_RING_F_*
 * @mech:    enum hsmcard_mech (0 for RANDOM)
 * @mparam:  as struct hsmcard_op.mparam
 * @rsvd0:   must be zero
 * @handle:  key handle of the user partition (0 for DIGEST and RANDOM)
 * @in_off:  input offset in the arena
 * @in_len:  input bytes (0 for RANDOM)
 * @out_off: output offset in the arena
 * @out_len: output capacity; for VERIFY and MAC_VERIFY the length of the
 *           signature/MAC at @out_off
 * @aux:     AES-GCM: AAD bytes at the start of the input; RSA-PSS: salt
 *           length; otherwise 0
 * @rsvd1:   must be zero
 * @iv:      ENCRYPT/DECRYPT: IV, counter, tweak or nonce; otherwise zero
 * @cookie:  copied to the completion
 *
 * Input and output must lie inside the arena, must not overlap (except for
 * VERIFY and MAC_VERIFY, where both are inputs) and be at most
 * max_job_len bytes each.
 */
struct hsmcard_ring_sqe {
	__u8	opcode;
	__u8	flags;
	__u16	mech;
	__u16	mparam;
	__u16	rsvd0;
	__u64	handle;
	__u32	in_off;
	__u32	in_len;
	__u32	out_off;
	__u32	out_len;
	__u32	aux;
	__u32	rsvd1;
	__u8	iv[16];
	__u64	cookie;
};

/**
 * struct hsmcard_ring_cqe - one completion (16 bytes)
 * @cookie: the job's cookie
 * @status: 0 or a negative errno (Documentation/hsmcard/rings.rst)
 * @len:    output bytes written; with -ENOSPC the bytes needed
 */
struct hsmcard_ring_cqe {
	__u64	cookie;
	__s32	status;
	__u32	len;
};

#define HSMCARD_IOC_INFO	_IOWR(HSMCARD_IOC_MAGIC, 0x00, struct hsmcard_info)
#define HSMCARD_IOC_KEY_GENERATE _IOWR(HSMCARD_IOC_MAGIC, 0x01, struct hsmcard_key_attrs)
#define HSMCARD_IOC_KEY_IMPORT	_IOWR(HSMCARD_IOC_MAGIC, 0x02, struct hsmcard_key_import)
#define HSMCARD_IOC_KEY_LIST	_IOWR(HSMCARD_IOC_MAGIC, 0x03, struct hsmcard_key_list)
#define HSMCARD_IOC_KEY_ATTRS	_IOWR(HSMCARD_IOC_MAGIC, 0x04, struct hsmcard_key_get_attrs)
#define HSMCARD_IOC_KEY_PUBKEY	_IOWR(HSMCARD_IOC_MAGIC, 0x05, struct hsmcard_key_pubkey)
#define HSMCARD_IOC_KEY_DESTROY	_IOWR(HSMCARD_IOC_MAGIC, 0x06, struct hsmcard_key_handle)
#define HSMCARD_IOC_KEY_WRAP	_IOWR(HSMCARD_IOC_MAGIC, 0x07, struct hsmcard_key_wrap)
#define HSMCARD_IOC_KEY_UNWRAP	_IOWR(HSMCARD_IOC_MAGIC, 0x08, struct hsmcard_key_unwrap)
#define HSMCARD_IOC_KEY_SET_STATE _IOWR(HSMCARD_IOC_MAGIC, 0x09, struct hsmcard_key_set_state)
#define HSMCARD_IOC_KEY_ROTATE	_IOWR(HSMCARD_IOC_MAGIC, 0x0a, struct hsmcard_key_rotate)
#define HSMCARD_IOC_KEY_FIND	_IOWR(HSMCARD_IOC_MAGIC, 0x0b, struct hsmcard_key_find)
#define HSMCARD_IOC_ENCRYPT	_IOWR(HSMCARD_IOC_MAGIC, 0x10, struct hsmcard_op)
#define HSMCARD_IOC_DECRYPT	_IOWR(HSMCARD_IOC_MAGIC, 0x11, struct hsmcard_op)
#define HSMCARD_IOC_DIGEST	_IOWR(HSMCARD_IOC_MAGIC, 0x12, struct hsmcard_op)
#define HSMCARD_IOC_MAC		_IOWR(HSMCARD_IOC_MAGIC, 0x13, struct hsmcard_op)
#define HSMCARD_IOC_MAC_VERIFY	_IOWR(HSMCARD_IOC_MAGIC, 0x14, struct hsmcard_op)
#define HSMCARD_IOC_SIGN	_IOWR(HSMCARD_IOC_MAGIC, 0x15, struct hsmcard_op)
#define HSMCARD_IOC_VERIFY	_IOWR(HSMCARD_IOC_MAGIC, 0x16, struct hsmcard_op)
#define HSMCARD_IOC_RANDOM	_IOWR(HSMCARD_IOC_MAGIC, 0x17, struct hsmcard_random)
#define HSMCARD_IOC_TOKEN_CREATE _IOWR(HSMCARD_IOC_MAGIC, 0x20, struct hsmcard_token_create)
#define HSMCARD_IOC_TOKEN_INFO	_IOWR(HSMCARD_IOC_MAGIC, 0x21, struct hsmcard_token)
#define HSMCARD_IOC_TOKEN_DESTROY _IOWR(HSMCARD_IOC_MAGIC, 0x22, struct hsmcard_token)
/* On /dev/hsmcardN: returns the ring fd in struct hsmcard_ring_setup.fd. */
#define HSMCARD_IOC_RING_SETUP	_IOWR(HSMCARD_IOC_MAGIC, 0x30, struct hsmcard_ring_setup)
/* On a ring fd: argument = entries to submit; returns entries consumed. */
#define HSMCARD_IOC_RING_SUBMIT	_IO(HSMCARD_IOC_MAGIC, 0x31)
/*
 * On a ring fd: signal an eventfd (argument: pointer to its __s32 fd) on
 * every completion; -1 stops signalling.
 */
#define HSMCARD_IOC_RING_EVENTFD _IOW(HSMCARD_IOC_MAGIC, 0x32, __s32)

/* Audit log: CAP_SYS_ADMIN. */
#define HSMCARD_IOC_AUDIT_READ	_IOWR(HSMCARD_IOC_MAGIC, 0x40, struct hsmcard_audit_read)
#define HSMCARD_IOC_AUDIT_PUBKEY _IOWR(HSMCARD_IOC_MAGIC, 0x41, struct hsmcard_audit_pubkey)
#define HSMCARD_IOC_AUDIT_CHECKPOINT _IOWR(HSMCARD_IOC_MAGIC, 0x42, struct hsmcard_audit_checkpoint)

/* Partitions, roles and PINs. */
#define HSMCARD_IOC_LOGIN	_IOWR(HSMCARD_IOC_MAGIC, 0x50, struct hsmcard_login)
#define HSMCARD_IOC_LOGOUT	_IO(HSMCARD_IOC_MAGIC, 0x51)
#define HSMCARD_IOC_SET_PIN	_IOWR(HSMCARD_IOC_MAGIC, 0x52, struct hsmcard_set_pin)
#define HSMCARD_IOC_PART_INFO	_IOWR(HSMCARD_IOC_MAGIC, 0x53, struct hsmcard_part_info)
#define HSMCARD_IOC_PART_CREATE	_IOWR(HSMCARD_IOC_MAGIC, 0x54, struct hsmcard_part_admin)
#define HSMCARD_IOC_PART_DELETE	_IOWR(HSMCARD_IOC_MAGIC, 0x55, struct hsmcard_part_admin)
#define HSMCARD_IOC_CARD_INIT	_IOWR(HSMCARD_IOC_MAGIC, 0x56, struct hsmcard_part_admin)

#endif /* _UAPI_LINUX_HSMCARD_H */
