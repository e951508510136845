/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * hsmcard hardware interface: PCI identity, BAR0 registers, queue entry
 * layouts, command set and status codes.
 *
 * This header is the single source of truth for the host interface of the
 * hsmcard PCIe HSM.  It is shared verbatim by the Linux driver (driver/) and
 * by the QEMU device model and its firmware core (qemu-device/).  Both sides
 * check the layouts with static assertions.  Documentation/hsmcard/hw.rst
 * describes the semantics.
 *
 * All multi-byte fields are little endian.
 *
 * Copyright (C) 2026 The hsmcard authors
 */
#ifndef HSMCARD_HW_H
#define HSMCARD_HW_H

#include <linux/types.h>

/* ---- PCI identity (experimental IDs, not allocated by the PCI-SIG) ---- */
#define HSM_PCI_VENDOR_ID		0x1234
#define HSM_PCI_DEVICE_ID		0x4853
#define HSM_PCI_REVISION		0x01
#define HSM_PCI_CLASS			0x108000 /* encryption controller, other */

#define HSM_BAR_REGS			0	/* 64-bit memory BAR, registers */
#define HSM_BAR_MSIX			2	/* 64-bit memory BAR, MSI-X */
#define HSM_BAR0_SIZE			0x4000

/* ---- BAR0 register map ---- */
#define HSM_REG_CAP		0x00	/* 64-bit RO: capabilities */
#define HSM_REG_VS		0x08	/* 32-bit RO: interface version */
#define HSM_REG_CC		0x14	/* 32-bit RW: controller configuration */
#define HSM_REG_CSTS		0x1c	/* 32-bit RO: controller status */
#define HSM_REG_AQA		0x24	/* 32-bit RW: admin queue attributes */
#define HSM_REG_ASQ		0x28	/* 64-bit RW: admin SQ base address */
#define HSM_REG_ACQ		0x30	/* 64-bit RW: admin CQ base address */
#define HSM_REG_INTCOAL		0x38	/* 32-bit RW: interrupt coalescing */
#define HSM_REG_EVTSTS		0x40	/* 32-bit RW1C: pending events */
#define HSM_REG_EVTMASK		0x44	/* 32-bit RW: event interrupt mask */
#define HSM_REG_HEALTH		0x48	/* 32-bit RO: health/tamper state */
#define HSM_REG_TAMPER_CNT	0x4c	/* 32-bit RO: tamper events seen */
#define HSM_REG_AUDIT_UNREAD	0x50	/* 32-bit RO: audit records not read */
#define HSM_REG_AUDIT_HWM	0x54	/* 32-bit RO: audit high-water mark */
#define HSM_REG_DBS		0x1000	/* doorbells, 4 bytes each */

/* Doorbell of submission queue @qid (tail) and completion queue (head). */
#define HSM_REG_SQTDBL(qid)	(HSM_REG_DBS + (2 * (qid)) * 4)
#define HSM_REG_CQHDBL(qid)	(HSM_REG_DBS + (2 * (qid) + 1) * 4)

/* CAP fields */
#define HSM_CAP_MQES(cap)	((__u32)((cap) & 0xffff))	/* max entries - 1 */
#define HSM_CAP_MAXQ(cap)	((__u32)(((cap) >> 16) & 0xff))	/* I/O qpairs */
#define HSM_CAP_TO(cap)		((__u32)(((cap) >> 24) & 0xff))	/* 100 ms */
#define HSM_CAP_NVEC(cap)	((__u32)(((cap) >> 32) & 0xffff)) /* MSI-X */
#define HSM_CAP_MKMQES(v)	((__u64)((v) & 0xffff))
#define HSM_CAP_MKMAXQ(v)	((__u64)((v) & 0xff) << 16)
#define HSM_CAP_MKTO(v)		((__u64)((v) & 0xff) << 24)
#define HSM_CAP_MKNVEC(v)	((__u64)((v) & 0xffff) << 32)

/* VS: major in bits 31:16, minor in 15:8 */
#define HSM_VS(maj, min)	(((maj) << 16) | ((min) << 8))
#define HSM_VS_CURRENT		HSM_VS(1, 0)

/* CC fields */
#define HSM_CC_EN		0x1u

/* CSTS fields */
#define HSM_CSTS_RDY		0x1u
#define HSM_CSTS_CFS		0x2u	/* controller fatal status */
#define HSM_CSTS_TAMPER		0x4u	/* card is zeroized */

/* AQA: queue sizes are entries - 1 */
#define HSM_AQA_ASQS(aqa)	((aqa) & 0xfff)
#define HSM_AQA_ACQS(aqa)	(((aqa) >> 16) & 0xfff)
#define HSM_AQA_MK(sq, cq)	((((__u32)(cq) & 0xfff) << 16) | ((__u32)(sq) & 0xfff))

/*
 * INTCOAL: an I/O completion queue interrupt is raised when THR completions
 * are pending (0 or 1: every completion) or TIME x 100 us have passed since
 * the first pending one, whichever comes first.  The admin queue and events
 * are never coalesced.
 */
#define HSM_INTCOAL_THR(v)	((v) & 0xff)
#define HSM_INTCOAL_TIME(v)	(((v) >> 8) & 0xff)
#define HSM_INTCOAL_MK(thr, t)	((((__u32)(t) & 0xff) << 8) | ((__u32)(thr) & 0xff))

/* EVTSTS / EVTMASK bits: raised on MSI-X vector HSM_VEC_EVENT */
#define HSM_EVT_TAMPER		0x1u
#define HSM_EVT_HEALTH		0x2u
#define HSM_EVT_FATAL		0x4u
/*
 * AUDIT: HSM_REG_AUDIT_UNREAD, the records appended to the audit log since
 * an AUDIT_READ last reached its newest record, has reached
 * HSM_REG_AUDIT_HWM.  Raised once per crossing; such an AUDIT_READ sets
 * the count back to 0 and re-arms it.
 */
#define HSM_EVT_AUDIT		0x8u

/* HEALTH register */
#define HSM_HEALTH_OK		0
#define HSM_HEALTH_TAMPERED	1
#define HSM_HEALTH_FAILED	2

/* MSI-X vectors: 0 events, 1 admin CQ, 2.. I/O CQs (chosen at creation) */
#define HSM_VEC_EVENT		0
#define HSM_VEC_ADMIN		1
#define HSM_VEC_IO_FIRST	2

/* Queue geometry */
#define HSM_ADMIN_QID		0
#define HSM_MAX_IOQ		64
#define HSM_MIN_QSIZE		2
#define HSM_MAX_QSIZE		4096
#define HSM_QUEUE_ALIGN		4096	/* queue base address alignment */

/* ---- Submission queue entry (64 bytes) ---- */
#define HSM_SQE_SIZE		64
#define HSM_CQE_SIZE		16

/* sqe.flags */
#define HSM_SQE_F_SRC_SGL	0x1u	/* src is an SGL, src_nsge entries */
#define HSM_SQE_F_DST_SGL	0x2u	/* dst is an SGL, dst_nsge entries */
#define HSM_SQE_F_PREHASHED	0x4u	/* sign/verify: src is a digest */

struct hsm_sqe {
	__u8	opcode;
	__u8	flags;
	__le16	cid;		/* command id, echoed in the completion */
	__le16	mech;		/* enum hsm_mech, or 0 */
	__le16	mparam;		/* mechanism parameter (hash, tag length) */
	__le64	handle;		/* key handle, or command specific */
	__le64	src;		/* source buffer or SGL address */
	__le64	dst;		/* destination buffer or SGL address */
	__le32	src_len;	/* source length in bytes */
	__le32	dst_len;	/* destination capacity in bytes */
	__le16	src_nsge;	/* SGL entries when HSM_SQE_F_SRC_SGL */
	__le16	dst_nsge;	/* SGL entries when HSM_SQE_F_DST_SGL */
	__le32	aux;		/* command specific (AAD length, cursor...) */
	union {
		__u8	iv[16];	/* cipher IV / tweak / nonce */
		__le32	cdw[4];	/* command specific dwords */
		__le64	qw[2];
	};
};

/* ---- Scatter-gather list entry (16 bytes) ---- */
#define HSM_SGE_SIZE		16
#define HSM_MAX_SGE		256

struct hsm_sge {
	__le64	addr;
	__le32	len;
	__le32	rsvd;		/* must be zero */
};

/* ---- Completion queue entry (16 bytes) ---- */
struct hsm_cqe {
	__le64	result;		/* command specific result */
	__le16	sq_head;	/* SQ head after this command was consumed */
	__le16	sq_id;
	__le16	cid;
	__le16	status;		/* bit 0: phase, bits 15:1: status code */
};

#define HSM_CQE_PHASE(st)	((st) & 1)
#define HSM_CQE_STATUS(st)	((st) >> 1)

/* ---- Opcodes ---- */
enum hsm_admin_opcode {
	HSM_ADM_IDENTIFY	= 0x01,	/* dst: 4096-byte struct hsm_identify */
	HSM_ADM_CREATE_IOQ	= 0x02,	/* create an I/O queue pair */
	HSM_ADM_DELETE_IOQ	= 0x03,	/* delete an I/O queue pair */
	HSM_ADM_GET_RANDOM	= 0x04,	/* dst: dst_len random bytes */
	HSM_ADM_KEY_GENERATE	= 0x10,	/* src: attrs; result: handle */
	HSM_ADM_KEY_IMPORT	= 0x11,	/* src: attrs + clear key (session/KEK) */
	HSM_ADM_KEY_UNWRAP	= 0x12,	/* src: attrs + blob; cdw[2]: flags */
	HSM_ADM_KEY_WRAP	= 0x13,	/* export wrapped; dst: blob; cdw[2] */
	HSM_ADM_KEY_EXPORT_PUB	= 0x14,	/* dst: DER SubjectPublicKeyInfo */
	HSM_ADM_KEY_DESTROY	= 0x15,
	HSM_ADM_KEY_LIST	= 0x16,	/* dst: __le64 handles from aux */
	HSM_ADM_KEY_GET_ATTRS	= 0x17,	/* dst: struct hsm_key_attrs */
	HSM_ADM_TOKEN_CREATE	= 0x18,	/* handle -> struct hsm_key_token */
	HSM_ADM_TOKEN_OPEN	= 0x19,	/* struct hsm_key_token -> handle */
	HSM_ADM_AUDIT_READ	= 0x1a,	/* qw[0]: first seq; dst: hdr + records */
	HSM_ADM_AUDIT_PUBKEY	= 0x1b,	/* dst: DER SubjectPublicKeyInfo */
	HSM_ADM_AUDIT_CHECKPOINT = 0x1c, /* result: seq of the signed record */
	HSM_ADM_KEY_SET_STATE	= 0x1d,	/* cdw[0]: new enum hsm_key_state */
	HSM_ADM_KEY_ROTATE	= 0x1e,	/* result: handle of the new version */
	HSM_ADM_KEY_FIND	= 0x1f,	/* src: label; result: handle */
	HSM_ADM_CARD_INIT	= 0x20,	/* src: struct hsm_auth_req */
	HSM_ADM_PART_CREATE	= 0x21,	/* src: auth req; result: partition */
	HSM_ADM_PART_DELETE	= 0x22,	/* src: auth req */
	HSM_ADM_PART_INFO	= 0x23,	/* cdw[0]: partition; dst: part info */
	HSM_ADM_LOGIN		= 0x24,	/* src: auth req */
	HSM_ADM_SET_PIN		= 0x25,	/* src: auth req */
};

enum hsm_io_opcode {
	HSM_IO_ENCRYPT		= 0x80,
	HSM_IO_DECRYPT		= 0x81,
	HSM_IO_DIGEST		= 0x82,
	HSM_IO_MAC		= 0x83,	/* HMAC generate */
	HSM_IO_MAC_VERIFY	= 0x84,	/* dst (input): expected MAC */
	HSM_IO_SIGN		= 0x85,
	HSM_IO_VERIFY		= 0x86,	/* dst (input): signature */
	HSM_IO_GET_RANDOM	= 0x87,
	HSM_IO_HASH_UPDATE	= 0x88,	/* multi-part digest/HMAC, see below */
	HSM_IO_HASH_FINAL	= 0x89,
};

/*
 * Multi-part digest and HMAC (HSM_IO_HASH_UPDATE / HSM_IO_HASH_FINAL).
 *
 * The running state of a hash lives in host memory as an opaque blob of
 * HSM_HASH_STATE_SIZE bytes that the card seals (authenticated encryption
 * under a key that never leaves the card), so the host can keep, copy,
 * export and import it but cannot read or alter it.  qw[0] holds the bus
 * address of the blob.
 *
 * mech: SHA256/384/512 (handle 0) or HMAC_SHA256/384/512 (handle = HMAC key
 * with USE_SIGN; the state is bound to that key).  src/src_len: the next
 * message bytes, any length 0..max_xfer (SGL allowed).
 *
 * HSM_SQE_F_HASH_INIT: start a new hash and ignore the blob's content;
 * without it the blob must be a state this card sealed for the same mech
 * and key, else HSM_SC_INVALID_STATE.
 *
 * UPDATE writes the new state back to the blob (dst must be 0); result 0.
 * FINAL reads the blob (unless INIT), writes the digest or MAC to dst
 * (dst_len >= digest size) and leaves the blob untouched; result = digest
 * size.  FINAL with INIT is a one-shot hash of src.
 */
#define HSM_HASH_STATE_SIZE	320
#define HSM_SQE_F_HASH_INIT	0x8u

/*
 * Key tokens (HSM_ADM_TOKEN_CREATE / HSM_ADM_TOKEN_OPEN) name a persistent
 * key held by one card.  They carry no key material, only the card's
 * identity, the key handle and an authenticator (HMAC-SHA-256 under a
 * token key derived inside the card from its master key), so a token is
 * only good on the card that made it and cannot be forged or altered.
 *
 * TOKEN_CREATE: handle = key (AES, persistent); dst = token (dst_len >=
 * HSM_TOKEN_SIZE); result = HSM_TOKEN_SIZE.  Session keys: INVALID_FIELD.
 * TOKEN_OPEN: src = token (src_len == HSM_TOKEN_SIZE); result = handle of
 * the key it names.  Wrong magic, version or reserved bits: INVALID_FIELD;
 * another card, a bad authenticator or a key that is gone: INVALID_TOKEN.
 */
#define HSM_TOKEN_MAGIC		0x4b544d48u	/* "HMTK" little-endian */
#define HSM_TOKEN_VERSION	1
#define HSM_TOKEN_SIZE		80

struct hsm_key_token {
	__le32	magic;		/* HSM_TOKEN_MAGIC */
	__le16	version;	/* HSM_TOKEN_VERSION */
	__le16	type;		/* enum hsm_key_type of the key */
	__le16	bits;		/* its size in bits */
	__le16	rsvd0;		/* zero */
	__le32	rsvd1;		/* zero */
	__u8	card_id[16];	/* struct hsm_identify.card_id */
	__le64	handle;		/* key handle on that card */
	__le64	rsvd2;		/* zero */
	__u8	mac[32];	/* HMAC-SHA-256 over the bytes above */
};

/*
 * HSM_ADM_CREATE_IOQ: qid in cdw[0] (1..MAXQ), queue size - 1 in cdw[1]
 * (both queues of the pair have the same size), MSI-X vector in cdw[2],
 * src = SQ base, dst = CQ base (both HSM_QUEUE_ALIGN aligned).
 * HSM_ADM_DELETE_IOQ: qid in cdw[0]; commands still queued are discarded.
 */

/* ---- Mechanisms ---- */
enum hsm_mech {
	HSM_MECH_NONE		= 0,
	HSM_MECH_AES_ECB	= 1,
	HSM_MECH_AES_CBC	= 2,	/* no padding: lengths are block multiples */
	HSM_MECH_AES_CTR	= 3,	/* 128-bit big-endian counter in iv */
	HSM_MECH_AES_XTS	= 4,	/* tweak in iv, key is two AES keys */
	HSM_MECH_AES_GCM	= 5,	/* 12-byte nonce in iv, mparam: tag len */
	HSM_MECH_AES_CBC_HMAC_SHA256 = 8, /* authenc, HSM_KEY_AUTHENC key */
	HSM_MECH_SHA256		= 16,
	HSM_MECH_SHA384		= 17,
	HSM_MECH_SHA512		= 18,
	HSM_MECH_HMAC_SHA256	= 24,
	HSM_MECH_HMAC_SHA384	= 25,
	HSM_MECH_HMAC_SHA512	= 26,
	HSM_MECH_RSA_PKCS1	= 32,	/* sign/verify: mparam = hash mech */
	HSM_MECH_RSA_PSS	= 33,	/* mparam = hash mech, aux = salt len */
	HSM_MECH_RSA_OAEP	= 34,	/* mparam = hash mech (MGF1 same) */
	HSM_MECH_RSA_RAW	= 35,	/* modular exponentiation, no padding */
	HSM_MECH_ECDSA		= 40,	/* mparam = hash mech, DER signature */
	HSM_MECH_EDDSA		= 41,	/* Ed25519 (pure), 64-byte signature */
	HSM_MECH_AES_KWP	= 48,	/* RFC 5649 key wrap with padding */
	HSM_MECH_MAX		= 64,
};

/* ---- Key types and attributes ---- */
enum hsm_key_type {
	HSM_KEY_AES		= 1,	/* 16, 24, 32 bytes; 32/64 for XTS */
	HSM_KEY_HMAC		= 2,	/* generic secret, 16..128 bytes */
	HSM_KEY_RSA		= 3,	/* 2048, 3072, 4096 bits */
	HSM_KEY_EC_P256		= 4,
	HSM_KEY_EC_P384		= 5,
	HSM_KEY_ED25519		= 6,
	HSM_KEY_AUTHENC		= 7,	/* AES key + HMAC key, import only */
	HSM_KEY_TYPE_MAX	= 8,
};

/*
 * Imported (session) keys, HSM_ADM_KEY_IMPORT, may be of sizes the card
 * would not generate, because the kernel's crypto API hands over whatever
 * its users set:
 *  - HSM_KEY_HMAC: 0..HSM_HMAC_IMPORT_MAX bytes (RFC 2104: a key longer
 *    than the hash block is hashed first; bits = length x 8);
 *  - HSM_KEY_RSA: DER PKCS#8, PKCS#1 RSAPrivateKey or PKCS#1
 *    RSAPublicKey, 512..4096-bit modulus; a public-only key allows only
 *    USE_ENCRYPT and USE_VERIFY;
 *  - HSM_KEY_AUTHENC: struct hsm_authenc_key_hdr || AES key || HMAC key,
 *    used with HSM_MECH_AES_CBC_HMAC_SHA256 (uses ENCRYPT/DECRYPT),
 *    bits = AES key size in bits.
 */
#define HSM_HMAC_IMPORT_MAX	1024

struct hsm_authenc_key_hdr {
	__le16	enc_len;	/* AES key bytes: 16, 24 or 32 */
	__le16	mac_len;	/* HMAC key bytes: 0..HSM_HMAC_IMPORT_MAX */
	__le32	rsvd;		/* zero */
};

/*
 * HSM_MECH_AES_CBC_HMAC_SHA256 (ENCRYPT/DECRYPT, the kernel's
 * authenc(hmac(sha256),cbc(aes)) encrypt-then-MAC): iv = CBC IV, aux = AAD
 * length, mparam = tag length 0..32 (the HMAC truncated; 0 means no tag).
 * Encrypt: src = AAD || plaintext (a multiple of 16 bytes), dst =
 * ciphertext || tag with tag = HMAC(AAD || ciphertext).  Decrypt: src = AAD
 * || ciphertext || tag, dst = plaintext; a wrong tag gives
 * HSM_SC_VERIFY_FAILED and nothing is written.
 */

/* allowed uses */
#define HSM_USE_ENCRYPT		0x1u
#define HSM_USE_DECRYPT		0x2u
#define HSM_USE_SIGN		0x4u
#define HSM_USE_VERIFY		0x8u
#define HSM_USE_WRAP		0x10u
#define HSM_USE_UNWRAP		0x20u
#define HSM_USE_DERIVE		0x40u
#define HSM_USE_ALL		0x7fu

/* key flags */
#define HSM_KEYF_EXTRACTABLE	0x1u	/* may leave wrapped */
#define HSM_KEYF_SESSION	0x2u	/* volatile, never persisted */
#define HSM_KEYF_PERSISTENT	0x4u	/* kept in the sealed keystore */
#define HSM_KEYF_SENSITIVE	0x8u	/* never exported in clear */
#define HSM_KEYF_ALL		0xfu

/*
 * Key handles are opaque to applications, but their layout is fixed so the
 * driver can check the owner partition before it submits a command.  A
 * handle whose tag does not match the key now in its slot is rejected with
 * HSM_SC_INVALID_HANDLE.  Handle 0 is never valid.
 */
#define HSM_HANDLE_SLOT(h)	((__u32)((h) & 0xffffff))	/* bits 23:0 */
#define HSM_HANDLE_PART(h)	((__u32)(((h) >> 24) & 0xff))	/* 31:24 */
#define HSM_HANDLE_TAG(h)	((__u32)((h) >> 32))		/* 63:32 */

#define HSM_LABEL_LEN		64
#define HSM_KEY_ID_LEN		32	/* application key ID (CKA_ID) */
#define HSM_DEFAULT_PARTITION	0
#define HSM_KERNEL_PARTITION	1	/* crypto API session keys */
#define HSM_NR_PARTITIONS	16	/* 0 and 1 always exist */

/*
 * Key lifecycle (NIST SP 800-57 style).  The card checks the state on
 * every use, on the admin and the I/O queues:
 *  - PRE_ACTIVE: no cryptographic use at all;
 *  - ACTIVE: the key's allowed uses;
 *  - DEACTIVATED, COMPROMISED: only processing of old data, i.e. DECRYPT,
 *    VERIFY and MAC_VERIFY (a DEACTIVATED AES key also KEY_UNWRAP); never
 *    ENCRYPT, SIGN, MAC, HASH_UPDATE/FINAL with the key, or KEY_WRAP as
 *    the wrapping key.  A COMPROMISED key is never exported (KEY_WRAP of
 *    it) either.
 * A use the state forbids fails with HSM_SC_KEY_STATE (PRE_ACTIVE,
 * DEACTIVATED) or HSM_SC_KEY_COMPROMISED.  KEY_EXPORT_PUB, KEY_GET_ATTRS
 * and TOKEN_CREATE/OPEN are not uses.  Destroyed keys are gone
 * (KEY_DESTROY).
 *
 * KEY_SET_STATE: handle, cdw[0] = new state.  Allowed: PRE_ACTIVE ->
 * ACTIVE, PRE_ACTIVE or ACTIVE -> DEACTIVATED, PRE_ACTIVE, ACTIVE or
 * DEACTIVATED -> COMPROMISED; any other change: HSM_SC_KEY_STATE, a value
 * out of range: HSM_SC_INVALID_FIELD.  ACTIVE sets activated, DEACTIVATED
 * and COMPROMISED set deactivated (unless already set) to the card's
 * time.  A persistent key's new state is sealed in the key store before
 * the command completes.
 *
 * KEY_ROTATE: handle = an ACTIVE key of a type the card generates (not an
 * AUTHENC or public-only RSA key: HSM_SC_KEY_TYPE).  The card generates a
 * new key with the same type, size, uses, flags, partition and label,
 * version = the family's newest version + 1, ACTIVE, and moves the old key
 * to DEACTIVATED in the same step (one key store write for both).  result
 * = the new key's handle.  The new version has no key ID unless the
 * caller gives one: cdw[0] bit 0 (HSM_ROTATE_F_ID) set = src carries
 * HSM_KEY_ID_LEN bytes of ID (zero past cdw[1]) and cdw[1] = its length,
 * 1..HSM_KEY_ID_LEN; the ID must be free in the partition
 * (HSM_SC_ID_EXISTS).  Without the flag, src, cdw[1] and the other bits
 * of cdw[0] must be zero.  The old version keeps its ID.
 *
 * Labels: a non-empty label names one key family per partition.  Creating
 * (generate, import, unwrap) a key whose non-empty label is already in use
 * in its partition fails with HSM_SC_LABEL_EXISTS; only KEY_ROTATE adds a
 * version to a family.  Empty labels are not unique and not indexed, and
 * neither are the kernel crypto API's session keys (partition 1,
 * HSM_KEYF_SESSION).
 *
 * Key IDs: an application-chosen byte string of 1..HSM_KEY_ID_LEN bytes
 * (id_len 0: none), like PKCS#11 CKA_ID, e.g. a hash of the public key
 * that pairs a key with its certificate.  A non-empty ID is unique among
 * all keys of a partition, every version of every family included:
 * creating a key (generate, import, unwrap, rotate) with an ID already in
 * use in its partition fails with HSM_SC_ID_EXISTS.  Session keys of the
 * kernel partition are not indexed (as for labels).
 *
 * KEY_FIND: cdw[0] = partition, cdw[1] = version (0: the newest), src =
 * HSM_LABEL_LEN bytes of NUL padded, non-empty label; result = handle.
 * No such key: HSM_SC_INVALID_HANDLE.  The lookup is a hash index, its
 * time does not depend on the number of keys.
 * With cdw[2] = HSM_FIND_BY_ID the key is looked up by ID instead: src =
 * HSM_KEY_ID_LEN bytes, zero past the ID's length cdw[1] (1..
 * HSM_KEY_ID_LEN); result = the handle of the one key with that ID in the
 * partition.  cdw[2] = HSM_FIND_BY_LABEL (0) is the label lookup; any
 * other value: HSM_SC_INVALID_FIELD.
 */
#define HSM_FIND_BY_LABEL	0
#define HSM_FIND_BY_ID		1
#define HSM_ROTATE_F_ID		0x1u	/* KEY_ROTATE cdw[0]: new ID in src */

enum hsm_key_state {
	HSM_KEY_STATE_DEFAULT		= 0,	/* input only: ACTIVE */
	HSM_KEY_STATE_PRE_ACTIVE	= 1,
	HSM_KEY_STATE_ACTIVE		= 2,
	HSM_KEY_STATE_DEACTIVATED	= 3,
	HSM_KEY_STATE_COMPROMISED	= 4,
	HSM_KEY_STATE_MAX		= 5,
};

/*
 * 160 bytes; input of generate/import/unwrap, output of get-attrs.  On
 * input state may be DEFAULT (0), ACTIVE or PRE_ACTIVE, and version,
 * activated and deactivated must be zero (the card sets them: version 1,
 * activated = created for an ACTIVE key).  id_len is 0..HSM_KEY_ID_LEN
 * and the bytes of id past id_len are zero, else HSM_SC_INVALID_FIELD.
 */
struct hsm_key_attrs {
	__le64	handle;		/* output only */
	__le16	type;		/* enum hsm_key_type */
	__le16	bits;		/* key size in bits */
	__le32	uses;		/* HSM_USE_* */
	__le32	flags;		/* HSM_KEYF_* */
	__le32	partition;
	__le64	created;	/* seconds since the epoch, output only */
	__le16	state;		/* enum hsm_key_state */
	__le16	id_len;	/* bytes of id, 0: no key ID */
	__le32	version;	/* version in its label's family, from 1 */
	__le64	activated;	/* seconds since the epoch, 0: not yet */
	__le64	deactivated;	/* deactivated or compromised, 0: not yet */
	__le32	rsvd[2];	/* must be zero */
	char	label[HSM_LABEL_LEN];	/* NUL padded */
	__u8	id[HSM_KEY_ID_LEN];	/* key ID, zero padded */
};

/*
 * KEY_WRAP and KEY_UNWRAP: cdw[2] holds wrap flags (0: a plain RFC 5649
 * blob of the key material only, as external tools make it; any bit not
 * defined here: HSM_SC_INVALID_FIELD).  KEY_UNWRAP's cdw[0] and cdw[1]
 * must be zero.
 *
 * HSM_WRAP_F_ATTRS: the RFC 5649 payload is the key's attributes followed
 * by its material, so the key wrap's integrity check covers both:
 *   HSM_WRAP_ATTRS_MAGIC (8 bytes) || __le16 attrs_len ||
 *   struct hsm_key_attrs (attrs_len bytes, as KEY_GET_ATTRS reports it,
 *   with handle 0) || material (as without the flag).
 * A plain payload (raw key of at most 128 bytes, or DER beginning with
 * 0x30) can never be taken for one of these, nor the other way round.
 * KEY_WRAP exports the same keys with and without the flag (EXTRACTABLE,
 * not COMPROMISED, ...).  KEY_UNWRAP with the flag takes type, bits, uses,
 * flags, label, key ID, state, version and the created, activated and
 * deactivated times from the blob (partition: see below); attrs_len must be
 * sizeof(struct hsm_key_attrs) (else INVALID_FIELD), a payload without
 * the magic is DECRYPT_FAILED.  The caller's attrs (in src, as without
 * the flag) choose the partition, which must be the KEK's, and may only
 * narrow: type, bits and state 0 or equal to the blob's; label and key
 * ID empty or equal; uses 0 (the blob's) or a subset; flags 0 (the blob's) or exactly
 * the flags wanted, where EXTRACTABLE and PERSISTENT may be dropped,
 * SENSITIVE added, and SESSION must be the blob's.  Anything that widens
 * or contradicts the blob fails with HSM_SC_USE_DENIED (an audited
 * denial).  handle, created, version, activated, deactivated and the
 * reserved fields must be zero (INVALID_FIELD).
 */
#define HSM_WRAP_F_ATTRS	0x1u
#define HSM_WRAP_F_ALL		0x1u
#define HSM_WRAP_ATTRS_MAGIC	"HSMKATT1"	/* 8 bytes, no NUL */
#define HSM_WRAP_ATTRS_HDR	10		/* magic + attrs_len */

/* ---- Audit log ---- */
/*
 * Audit log.  The card appends one struct hsm_audit_rec (256 bytes) for
 * every management action and every custody denial.  Records carry
 * consecutive sequence numbers and are hash chained: prev_hash of record n
 * is SHA-256 over all 256 bytes of record n - 1 (32 zero bytes for the
 * first record of a log, seq 0).  A checkpoint record (HSM_AUDIT_EV_CHECKPOINT)
 * carries in sig[sig_len] an ECDSA P-256 / SHA-256 signature (DER) by the
 * card audit key over its own bytes 0..HSM_AUDIT_SIGNED_LEN - 1, i.e. over
 * its seq and the chain value of everything before it; the audit key's
 * public half is read with HSM_ADM_AUDIT_PUBKEY.  Documentation/hsmcard/hw.rst
 * has the exact rules a verifier applies.
 *
 * HSM_ADM_AUDIT_READ: qw[0] = first seq wanted; dst (dst_len >= 64 + 256,
 * dst_len - 64 a multiple of 256) = struct hsm_audit_read_hdr followed by
 * up to (dst_len - 64) / 256 records; result = records written.  A seq
 * beyond last_seq + 1: INVALID_FIELD; a seq older than the oldest record
 * the card still holds starts at the oldest (first_seq tells).
 * HSM_ADM_AUDIT_PUBKEY: dst = DER SubjectPublicKeyInfo; result = length.
 * HSM_ADM_AUDIT_CHECKPOINT: no fields; result = seq of the checkpoint.
 */
#define HSM_AUDIT_REC_SIZE	256
#define HSM_AUDIT_SIGNED_LEN	144	/* bytes 0..143: up to sig_len */
#define HSM_AUDIT_SIG_MAX	96
#define HSM_AUDIT_HDR_SIZE	64
#define HSM_AUDIT_NO_PART	0xffffffffu	/* card-wide record */

enum hsm_audit_event {
	HSM_AUDIT_EV_INIT		= 0x01,	/* new audit key: first start */
	HSM_AUDIT_EV_START		= 0x02,	/* restart on a sealed store */
	HSM_AUDIT_EV_CHECKPOINT		= 0x03,	/* signed record */
	HSM_AUDIT_EV_LOG_DAMAGED	= 0x04,	/* start found the log damaged */
	HSM_AUDIT_EV_TAMPER		= 0x05,
	HSM_AUDIT_EV_KEY_GENERATE	= 0x10,
	HSM_AUDIT_EV_KEY_IMPORT		= 0x11,
	HSM_AUDIT_EV_KEY_UNWRAP		= 0x12,
	HSM_AUDIT_EV_KEY_WRAP		= 0x13,	/* export, or denied export */
	HSM_AUDIT_EV_KEY_DESTROY	= 0x14,
	HSM_AUDIT_EV_TOKEN_CREATE	= 0x15,
	HSM_AUDIT_EV_TOKEN_OPEN		= 0x16,	/* failures only */
	HSM_AUDIT_EV_KEY_STATE		= 0x17,	/* lifecycle change, see below */
	HSM_AUDIT_EV_LOGIN		= 0x20,	/* PIN accepted by LOGIN */
	HSM_AUDIT_EV_LOGIN_FAIL		= 0x21,	/* PIN refused (any command) */
	HSM_AUDIT_EV_LOCKOUT		= 0x22,	/* a role got locked */
	HSM_AUDIT_EV_UNLOCK		= 0x23,	/* PIN (re)set by SO or admin */
	HSM_AUDIT_EV_LOGOUT		= 0x24,	/* reserved */
	HSM_AUDIT_EV_PART_CREATE	= 0x28,
	HSM_AUDIT_EV_PART_DELETE	= 0x29,	/* or partition 0 reset */
	HSM_AUDIT_EV_PART_CHANGE	= 0x2a,	/* own PIN changed */
};

/*
 * Role and PIN events (LOGIN .. PART_CHANGE): detail =
 * HSM_AUDIT_AUTH(role, n), n = failed logins of the role after the event
 * (LOGIN_FAIL, LOCKOUT), max failed logins (PART_CREATE), 1 if a reset
 * of partition 0 (PART_DELETE), 1 if the role was locked (UNLOCK), else 0.
 * label: the partition's label (PART_CREATE, PART_DELETE).  No PIN byte
 * is ever recorded.
 */
#define HSM_AUDIT_AUTH(role, n)	(((__u32)(role) << 16) | ((n) & 0xffff))
#define HSM_AUDIT_AUTH_ROLE(d)	((d) >> 16)
#define HSM_AUDIT_AUTH_N(d)	((d) & 0xffff)

/*
 * HSM_AUDIT_EV_KEY_STATE (KEY_SET_STATE, and the old key of KEY_ROTATE):
 * detail = HSM_AUDIT_STATE(old state, new state), handle = the key,
 * handle2 = the new version's handle (KEY_ROTATE) or 0, label = the key's
 * label.  KEY_ROTATE also records HSM_AUDIT_EV_KEY_GENERATE for the new
 * key (handle = new key, handle2 = old key, opcode = KEY_ROTATE), first.
 */
#define HSM_AUDIT_STATE(from, to)	(((__u32)(from) << 8) | ((to) & 0xff))
#define HSM_AUDIT_STATE_FROM(d)		(((d) >> 8) & 0xff)
#define HSM_AUDIT_STATE_TO(d)		((d) & 0xff)

/* HSM_AUDIT_EV_INIT detail */
#define HSM_AUDIT_INIT_NEW	0	/* no log existed */
#define HSM_AUDIT_INIT_REINIT	1	/* new key store, log continued */
#define HSM_AUDIT_INIT_VOLATILE	2	/* card without a key store */

/* HSM_AUDIT_EV_LOG_DAMAGED detail: what the start-up check found */
#define HSM_AUDIT_DMG_MISSING	1	/* log absent, key store knows one */
#define HSM_AUDIT_DMG_TORN	2	/* size not a multiple of 256 */
#define HSM_AUDIT_DMG_SEQ	3	/* seq gap or reorder */
#define HSM_AUDIT_DMG_CHAIN	4	/* prev_hash mismatch (edit) */
#define HSM_AUDIT_DMG_SIG	5	/* bad checkpoint signature */
#define HSM_AUDIT_DMG_SHORT	6	/* ends before the sealed head */
#define HSM_AUDIT_DMG_HEAD	7	/* sealed head's hash differs */
#define HSM_AUDIT_DMG_FORMAT	8	/* bad first record, reserved bits */

struct hsm_audit_rec {
	__le64	seq;
	__le64	time_ns;	/* CLOCK_REALTIME, ns since the epoch */
	__le16	event;		/* enum hsm_audit_event */
	__le16	status;		/* HSM_SC_* outcome (success or denial) */
	__le32	partition;	/* HSM_AUDIT_NO_PART if card-wide */
	__le64	handle;		/* key the action is about, or 0 */
	__le64	handle2;	/* KEK of wrap/unwrap, or 0 */
	__le32	detail;		/* key events: type << 16 | bits */
	__u8	opcode;		/* admin opcode that caused it, or 0 */
	__u8	rsvd0[3];	/* zero */
	char	label[HSM_LABEL_LEN];	/* key label, or event data */
	__u8	prev_hash[32];	/* SHA-256 of the previous record */
	__le16	sig_len;	/* checkpoints: bytes of sig[] */
	__u8	rsvd1[14];	/* zero */
	__u8	sig[HSM_AUDIT_SIG_MAX];	/* DER ECDSA signature, 0 padded */
};

/* HSM_ADM_AUDIT_READ header, at the start of dst */
#define HSM_AUDIT_F_DAMAGED	0x1u	/* start-up found the log damaged */
#define HSM_AUDIT_F_WRAPPED	0x2u	/* older records were dropped */
#define HSM_AUDIT_F_NO_KEY	0x4u	/* tampered: no audit key */
#define HSM_AUDIT_F_VOLATILE	0x8u	/* no key store: log in memory */

struct hsm_audit_read_hdr {
	__le64	first_seq;	/* seq of the first record that follows */
	__le64	next_seq;	/* qw[0] of the next read */
	__le64	last_seq;	/* newest record of the card */
	__le64	oldest_seq;	/* oldest record the card still holds */
	__le32	count;		/* records that follow */
	__le32	flags;		/* HSM_AUDIT_F_* */
	__u8	rsvd[24];
};

/* ---- Partitions, roles and PINs ---- */
/*
 * The card holds up to HSM_NR_PARTITIONS partitions.  0 (default) and 1
 * (kernel) always exist; 2.. are made with PART_CREATE.  Each has a
 * Security Officer and a User PIN; partition 1 never has PINs and never
 * accepts a login.  A partition without any PIN is "uninitialized".  A
 * card-wide administrator PIN guards CARD_INIT, PART_CREATE, PART_DELETE
 * and the SO PIN reset.  PINs are 4..64 bytes; the card keeps only salted
 * PBKDF2-HMAC-SHA256 hashes, in the sealed key store.  The card keeps no
 * login state: LOGIN only checks a PIN, the driver remembers the outcome
 * per file descriptor.  Documentation/hsmcard/hw.rst has the rules.
 */
#define HSM_PIN_MIN		4
#define HSM_PIN_MAX		64
#define HSM_MAX_FAIL_DEFAULT	5	/* failed logins before lockout */
#define HSM_MAX_FAIL_MAX	15
#define HSM_ADMIN_MAX_FAIL	10	/* the admin PIN's fixed limit */
#define HSM_PART_ANY		0xffffffffu	/* PART_CREATE: first free */

enum hsm_role {
	HSM_ROLE_NONE		= 0,
	HSM_ROLE_SO		= 1,	/* Security Officer of a partition */
	HSM_ROLE_USER		= 2,	/* User of a partition */
	HSM_ROLE_ADMIN		= 3,	/* card administrator */
};

/* struct hsm_auth_req.flags */
#define HSM_AUTH_F_RESET	0x1u	/* PART_DELETE of 0: reset it */

/* 256 bytes; src of CARD_INIT, PART_CREATE, PART_DELETE, LOGIN, SET_PIN */
struct hsm_auth_req {
	__le32	partition;	/* or HSM_PART_ANY (PART_CREATE) */
	__le16	role;		/* enum hsm_role: whose PIN is checked/set */
	__le16	auth_role;	/* SET_PIN: whose PIN @pin is (0: @role) */
	__le16	pin_len;	/* bytes of @pin */
	__le16	new_pin_len;	/* bytes of @new_pin */
	__le16	max_fail;	/* PART_CREATE: 1..15, 0: default (5) */
	__le16	flags;		/* HSM_AUTH_F_* */
	__le32	rsvd[12];	/* zero */
	__u8	pin[HSM_PIN_MAX];	/* zero padded */
	__u8	new_pin[HSM_PIN_MAX];	/* zero padded */
	char	label[HSM_LABEL_LEN];	/* PART_CREATE; NUL padded */
};

/* struct hsm_part_info.flags */
#define HSM_PART_S_EXISTS	0x01u
#define HSM_PART_S_INITIALIZED	0x02u	/* some PIN is set */
#define HSM_PART_S_SO_SET	0x04u
#define HSM_PART_S_USER_SET	0x08u
#define HSM_PART_S_SO_LOCKED	0x10u
#define HSM_PART_S_USER_LOCKED	0x20u
#define HSM_PART_S_KERNEL	0x40u	/* partition 1: no login */

/* struct hsm_part_info.card_flags */
#define HSM_CARD_S_ADMIN_SET	0x1u	/* an admin PIN is set */
#define HSM_CARD_S_ADMIN_LOCKED	0x2u
#define HSM_CARD_S_TAMPERED	0x4u

/* 128 bytes; dst of PART_INFO */
struct hsm_part_info {
	__le32	partition;
	__le32	flags;		/* HSM_PART_S_*; 0: no such partition */
	__le32	card_flags;	/* HSM_CARD_S_* */
	__le16	max_fail;	/* failed logins that lock a role */
	__u8	so_failed;	/* consecutive failed SO logins */
	__u8	user_failed;
	__le32	nr_keys;	/* keys held in the partition */
	__u8	admin_failed;	/* consecutive failed admin PINs */
	__u8	rsvd0[3];
	__le64	created;	/* seconds since the epoch */
	__le32	rsvd[8];
	char	label[HSM_LABEL_LEN];	/* NUL padded */
};

/* ---- Identify data (4096 bytes) ---- */
#define HSM_IDENTIFY_SIZE	4096

struct hsm_identify {
	char	serial[32];	/* NUL padded ASCII */
	char	model[32];
	char	fw_rev[16];
	__u8	card_id[16];	/* random per card, stable across resets */
	__le32	max_ioq;	/* I/O queue pairs supported */
	__le32	max_qsize;	/* entries per queue */
	__le32	max_xfer;	/* max bytes per src or dst buffer */
	__le32	max_sge;	/* max SGL entries per buffer */
	__le32	max_keys;	/* key store capacity */
	__le32	nr_keys;	/* keys currently held */
	__le64	mechs;		/* bit n set: enum hsm_mech n supported */
	__le32	key_types;	/* bit n set: enum hsm_key_type n */
	__le32	nr_partitions;
	__u8	rsvd[3960];
};

/* ---- Status codes (15 bits) ---- */
enum hsm_status {
	HSM_SC_SUCCESS		= 0x00,
	HSM_SC_INVALID_OPCODE	= 0x01,	/* unknown opcode for this queue */
	HSM_SC_INVALID_FIELD	= 0x02,	/* reserved or out-of-range field */
	HSM_SC_DATA_XFER	= 0x03,	/* DMA to/from host memory failed */
	HSM_SC_INVALID_QID	= 0x04,	/* queue id out of range / in use */
	HSM_SC_INVALID_QSIZE	= 0x05,
	HSM_SC_INVALID_VECTOR	= 0x06,
	HSM_SC_INVALID_SGL	= 0x07,	/* malformed scatter-gather list */
	HSM_SC_INVALID_LENGTH	= 0x08,	/* bad length for the mechanism */
	HSM_SC_BUFFER_TOO_SMALL	= 0x09,	/* result: bytes needed */
	HSM_SC_INVALID_MECH	= 0x0a,	/* unsupported mechanism */
	HSM_SC_INVALID_HANDLE	= 0x0b,	/* no such key in this partition */
	HSM_SC_KEY_TYPE		= 0x0c,	/* key type does not fit mechanism */
	HSM_SC_USE_DENIED	= 0x0d,	/* key attributes forbid the use */
	HSM_SC_NOT_EXTRACTABLE	= 0x0e,
	HSM_SC_INVALID_KEY_SIZE	= 0x0f,
	HSM_SC_KEYSTORE_FULL	= 0x10,
	HSM_SC_VERIFY_FAILED	= 0x11,	/* signature/MAC/tag mismatch */
	HSM_SC_DECRYPT_FAILED	= 0x12,	/* padding or unwrap failure */
	HSM_SC_TAMPERED		= 0x13,	/* card zeroized, re-init needed */
	HSM_SC_ABORTED		= 0x14,	/* queue deleted or card reset */
	HSM_SC_RNG_FAILURE	= 0x15,
	HSM_SC_INTERNAL		= 0x16,	/* internal error, card still sane */
	HSM_SC_INVALID_STATE	= 0x17,	/* hash state blob not valid here */
	HSM_SC_INVALID_TOKEN	= 0x18,	/* key token not from this card */
	HSM_SC_PIN_INCORRECT	= 0x19,	/* result: tries left */
	HSM_SC_PIN_LOCKED	= 0x1a,	/* role locked: too many failures */
	HSM_SC_PIN_NOT_SET	= 0x1b,	/* the role has no PIN (yet) */
	HSM_SC_KEY_STATE	= 0x1c,	/* key state forbids it (see above) */
	HSM_SC_KEY_COMPROMISED	= 0x1d,	/* the key is marked compromised */
	HSM_SC_LABEL_EXISTS	= 0x1e,	/* label in use in the partition */
	HSM_SC_ID_EXISTS	= 0x1f,	/* key ID in use in the partition */
	HSM_SC_MAX		= 0x20,
};

#endif /* HSMCARD_HW_H */
