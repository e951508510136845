// SPDX-License-Identifier: GPL-2.0
/*
 * hsmcard driver: the "hsmcard" generic netlink family.
 *
 * HSMCARD_CMD_GET_CARD reports the cards, their state and counters;
 * HSMCARD_CMD_EVENT multicasts events (state changes, tamper, health, key
 * lifecycle, refused PINs, audit log high-water) to the "events" group,
 * for monitoring agents such as `hsmctl monitor`.
 *
 * Events can be raised from any context, including the card's interrupt
 * handler: each card queues them in a small FIFO that a work item drains
 * into netlink messages, so they go out in order, from process context.
 * When the FIFO is full the event is dropped and counted; the next event
 * sent carries the count (HSMCARD_A_EVENTS_LOST).
 *
 * Documentation/hsmcard/netlink.rst describes the family.
 *
 * Copyright (C) 2026 The hsmcard authors
 */

#include <linux/cred.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched.h>
#include <linux/uidgid.h>
#include <net/genetlink.h>

#include "hsmcard.h"

/* Cards the family reports, in probe order. */
static LIST_HEAD(hsm_genl_cards);
static DEFINE_MUTEX(hsm_genl_lock);

enum hsm_genl_mcgrp {
	HSM_GENL_MCGRP_EVENTS,
};

static const struct genl_multicast_group hsm_genl_mcgrps[] = {
	[HSM_GENL_MCGRP_EVENTS] = {
		.name = HSMCARD_GENL_MCGRP_EVENTS,
		.flags = GENL_UNS_ADMIN_PERM,
	},
};

static const struct nla_policy hsm_genl_policy[HSMCARD_A_MAX + 1] = {
	[HSMCARD_A_CARD_INDEX] = { .type = NLA_U32 },
};

static struct genl_family hsm_genl_family;

static u64 hsm_genl_sum(struct hsm_dev *hdev, size_t off)
{
	u64 sum = 0;
	unsigned int i;

	/* Counters are updated under their queue's lock; a snapshot will do. */
	sum += READ_ONCE(*(u64 *)((u8 *)&hdev->adminq.stats + off));
	for (i = 0; i < hdev->nr_ioq; i++)
		sum += READ_ONCE(*(u64 *)((u8 *)&hdev->ioq[i].stats + off));
	return sum;
}

/* The attributes that name a card, in every message. */
static int hsm_genl_put_id(struct sk_buff *skb, struct hsm_dev *hdev)
{
	if (nla_put_u32(skb, HSMCARD_A_CARD_INDEX, hdev->id) ||
	    nla_put_string(skb, HSMCARD_A_CARD_NAME, hdev->name) ||
	    nla_put_string(skb, HSMCARD_A_PCI_ADDR, dev_name(&hdev->pdev->dev)))
		return -EMSGSIZE;
	return 0;
}

static int hsm_genl_fill_card(struct sk_buff *skb, struct hsm_dev *hdev,
			      u32 portid, u32 seq, int flags)
{
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &hsm_genl_family, flags,
			  HSMCARD_CMD_GET_CARD);
	if (!hdr)
		return -EMSGSIZE;
	if (hsm_genl_put_id(skb, hdev) ||
	    nla_put_string(skb, HSMCARD_A_SERIAL, hdev->limits.serial) ||
	    nla_put(skb, HSMCARD_A_CARD_ID, sizeof(hdev->limits.card_id),
		    hdev->limits.card_id) ||
	    nla_put_u32(skb, HSMCARD_A_STATE, hsm_dev_state(hdev)) ||
	    nla_put_u32(skb, HSMCARD_A_RESETS, READ_ONCE(hdev->resets)) ||
	    nla_put_u64_64bit(skb, HSMCARD_A_CMDS_SUBMITTED,
			      hsm_genl_sum(hdev, offsetof(struct hsm_queue_stats,
							  submitted)),
			      HSMCARD_A_PAD) ||
	    nla_put_u64_64bit(skb, HSMCARD_A_CMDS_COMPLETED,
			      hsm_genl_sum(hdev, offsetof(struct hsm_queue_stats,
							  completed)),
			      HSMCARD_A_PAD) ||
	    nla_put_u64_64bit(skb, HSMCARD_A_CMD_ERRORS,
			      hsm_genl_sum(hdev, offsetof(struct hsm_queue_stats,
							  errors)),
			      HSMCARD_A_PAD)) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

static int hsm_genl_get_card_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct hsm_dev *hdev;
	struct sk_buff *msg;
	u32 index;
	int ret = -ENODEV;

	if (!info->attrs[HSMCARD_A_CARD_INDEX])
		return -EINVAL;
	index = nla_get_u32(info->attrs[HSMCARD_A_CARD_INDEX]);
	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	mutex_lock(&hsm_genl_lock);
	list_for_each_entry(hdev, &hsm_genl_cards, genl_node) {
		if (hdev->id == index) {
			ret = hsm_genl_fill_card(msg, hdev, info->snd_portid,
						 info->snd_seq, 0);
			break;
		}
	}
	mutex_unlock(&hsm_genl_lock);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	return genlmsg_reply(msg, info);
}

static int hsm_genl_get_card_dumpit(struct sk_buff *skb,
				    struct netlink_callback *cb)
{
	struct hsm_dev *hdev;
	long skip = cb->args[0], n = 0;

	mutex_lock(&hsm_genl_lock);
	list_for_each_entry(hdev, &hsm_genl_cards, genl_node) {
		if (n++ < skip)
			continue;
		if (hsm_genl_fill_card(skb, hdev, NETLINK_CB(cb->skb).portid,
				       cb->nlh->nlmsg_seq, NLM_F_MULTI)) {
			n--;
			break;
		}
	}
	mutex_unlock(&hsm_genl_lock);
	cb->args[0] = n;
	return skb->len;
}

static const struct genl_small_ops hsm_genl_ops[] = {
	{
		.cmd = HSMCARD_CMD_GET_CARD,
		.doit = hsm_genl_get_card_doit,
		.dumpit = hsm_genl_get_card_dumpit,
	},
};

static struct genl_family hsm_genl_family __ro_after_init = {
	.name = HSMCARD_GENL_NAME,
	.version = HSMCARD_GENL_VERSION,
	.maxattr = HSMCARD_A_MAX,
	.policy = hsm_genl_policy,
	.module = THIS_MODULE,
	.small_ops = hsm_genl_ops,
	.n_small_ops = ARRAY_SIZE(hsm_genl_ops),
	.resv_start_op = HSMCARD_CMD_EVENT + 1,
	.mcgrps = hsm_genl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(hsm_genl_mcgrps),
};

static bool hsm_genl_is_key_event(u32 event)
{
	return (event >= HSMCARD_EVENT_KEY_CREATED &&
		event <= HSMCARD_EVENT_TOKEN_DESTROYED) ||
	       event == HSMCARD_EVENT_KEY_STATE;
}

/* The attributes of a refused PIN. */
static int hsm_genl_put_login(struct sk_buff *skb, const struct hsm_event *e)
{
	if ((e->part != U32_MAX &&
	     nla_put_u32(skb, HSMCARD_A_PARTITION, e->part)) ||
	    nla_put_u32(skb, HSMCARD_A_ROLE, e->role) ||
	    (e->tries != U32_MAX &&
	     nla_put_u32(skb, HSMCARD_A_TRIES_LEFT, e->tries)) ||
	    (e->locked && nla_put_flag(skb, HSMCARD_A_LOCKED)) ||
	    nla_put_u32(skb, HSMCARD_A_PID, e->pid) ||
	    nla_put_u32(skb, HSMCARD_A_UID, e->uid))
		return -EMSGSIZE;
	return 0;
}

/* Build and multicast one event; process context. */
static void hsm_genl_send(struct hsm_dev *hdev, const struct hsm_event *e,
			  u32 lost)
{
	struct sk_buff *skb;
	void *hdr;

	if (!genl_has_listeners(&hsm_genl_family, &init_net,
				HSM_GENL_MCGRP_EVENTS))
		return;
	skb = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!skb)
		return;
	hdr = genlmsg_put(skb, 0, 0, &hsm_genl_family, 0, HSMCARD_CMD_EVENT);
	if (!hdr)
		goto err;
	if (hsm_genl_put_id(skb, hdev) ||
	    nla_put_u32(skb, HSMCARD_A_EVENT, e->event) ||
	    nla_put_u64_64bit(skb, HSMCARD_A_TIMESTAMP, e->time_ns,
			      HSMCARD_A_PAD) ||
	    (e->event == HSMCARD_EVENT_STATE &&
	     nla_put_u32(skb, HSMCARD_A_STATE, e->arg)) ||
	    (e->arg && hsm_genl_is_key_event(e->event) &&
	     nla_put_u64_64bit(skb, HSMCARD_A_KEY_HANDLE, e->arg,
			       HSMCARD_A_PAD)) ||
	    (e->event == HSMCARD_EVENT_LOGIN_FAILED &&
	     hsm_genl_put_login(skb, e)) ||
	    (e->event == HSMCARD_EVENT_AUDIT_HIGH_WATER &&
	     (nla_put_u32(skb, HSMCARD_A_AUDIT_UNREAD, e->arg) ||
	      nla_put_u32(skb, HSMCARD_A_AUDIT_HIGH_WATER, e->mark))) ||
	    (lost && nla_put_u32(skb, HSMCARD_A_EVENTS_LOST, lost)))
		goto err;
	genlmsg_end(skb, hdr);
	genlmsg_multicast(&hsm_genl_family, skb, 0, HSM_GENL_MCGRP_EVENTS,
			  GFP_KERNEL);
	return;
err:
	nlmsg_free(skb);
}

static void hsm_genl_work(struct work_struct *work)
{
	struct hsm_dev *hdev = container_of(work, struct hsm_dev, evt_work);
	struct hsm_event e;
	unsigned long flags;
	u32 lost;

	for (;;) {
		spin_lock_irqsave(&hdev->evt_lock, flags);
		if (!kfifo_get(&hdev->evt_fifo, &e)) {
			spin_unlock_irqrestore(&hdev->evt_lock, flags);
			return;
		}
		lost = hdev->evt_lost;
		hdev->evt_lost = 0;
		spin_unlock_irqrestore(&hdev->evt_lock, flags);
		hsm_genl_send(hdev, &e, lost);
	}
}

/* Queue @e, stamped now; any context. */
static void hsm_genl_queue(struct hsm_dev *hdev, struct hsm_event *e)
{
	unsigned long flags;

	e->time_ns = ktime_get_real_ns();
	spin_lock_irqsave(&hdev->evt_lock, flags);
	if (hdev->evt_closed) {
		spin_unlock_irqrestore(&hdev->evt_lock, flags);
		return;
	}
	if (!kfifo_put(&hdev->evt_fifo, *e))
		hdev->evt_lost++;
	/* Under the lock: hsm_genl_remove_card() cannot have flushed yet. */
	queue_work(system_wq, &hdev->evt_work);
	spin_unlock_irqrestore(&hdev->evt_lock, flags);
}

/**
 * hsm_genl_event() - report an event of a card to the netlink listeners
 * @hdev:  card
 * @event: enum hsmcard_event
 * @arg:   the new state (HSMCARD_EVENT_STATE), the key handle (key and
 *         token events), else 0
 *
 * Context: any; does not sleep.
 */
void hsm_genl_event(struct hsm_dev *hdev, enum hsmcard_event event, u64 arg)
{
	struct hsm_event e = {
		.event = event,
		.arg = arg,
	};

	hsm_genl_queue(hdev, &e);
}

/**
 * hsm_genl_login_failed() - report a PIN the card refused
 * @hdev:       card
 * @part:       partition of the role (ignored for the administrator)
 * @role:       whose PIN was presented (HSM_ROLE_*)
 * @status:     HSM_SC_PIN_INCORRECT or HSM_SC_PIN_LOCKED
 * @tries_left: PIN_INCORRECT: the card's result, tries left (0: this
 *              failure locked the role)
 *
 * The caller (current) is reported as who tried.
 *
 * Context: process context of the caller; does not sleep.
 */
void hsm_genl_login_failed(struct hsm_dev *hdev, u32 part, u16 role,
			   u16 status, u64 tries_left)
{
	struct hsm_event e = {
		.event = HSMCARD_EVENT_LOGIN_FAILED,
		.part = role == HSM_ROLE_ADMIN ? U32_MAX : part,
		.role = role,
		.tries = U32_MAX,
		.pid = task_tgid_nr(current),
		.uid = from_kuid_munged(&init_user_ns, current_uid()),
	};

	if (status == HSM_SC_PIN_INCORRECT) {
		e.tries = min_t(u64, tries_left, U32_MAX - 1);
		e.locked = !tries_left;
	} else {
		e.locked = true;
	}
	hsm_genl_queue(hdev, &e);
}

/**
 * hsm_genl_audit_high_water() - report the card's audit high-water signal
 * @hdev:   card
 * @unread: audit records the host has not read
 * @mark:   the card's high-water mark
 *
 * Context: any; does not sleep.
 */
void hsm_genl_audit_high_water(struct hsm_dev *hdev, u32 unread, u32 mark)
{
	struct hsm_event e = {
		.event = HSMCARD_EVENT_AUDIT_HIGH_WATER,
		.arg = unread,
		.mark = mark,
	};

	hsm_genl_queue(hdev, &e);
}

/**
 * hsm_genl_init_dev() - prepare a new card's event queue
 * @hdev: card, not yet live
 */
void hsm_genl_init_dev(struct hsm_dev *hdev)
{
	spin_lock_init(&hdev->evt_lock);
	INIT_KFIFO(hdev->evt_fifo);
	INIT_WORK(&hdev->evt_work, hsm_genl_work);
	INIT_LIST_HEAD(&hdev->genl_node);
}

/**
 * hsm_genl_add_card() - list a card that is now live
 * @hdev: card
 *
 * Context: process context (probe).
 */
void hsm_genl_add_card(struct hsm_dev *hdev)
{
	mutex_lock(&hsm_genl_lock);
	list_add_tail(&hdev->genl_node, &hsm_genl_cards);
	mutex_unlock(&hsm_genl_lock);
	hsm_genl_event(hdev, HSMCARD_EVENT_CARD_ADDED, 0);
}

/**
 * hsm_genl_remove_card() - withdraw a card; its last event is "removed"
 * @hdev: card being removed, or whose probe failed
 *
 * Sends the events still queued and, for a card that was listed, the
 * removal, synchronously: nothing refers to the card afterwards.
 *
 * Context: process context (remove).
 */
void hsm_genl_remove_card(struct hsm_dev *hdev)
{
	struct hsm_event e = { .event = HSMCARD_EVENT_CARD_REMOVED };
	unsigned long flags;
	bool listed;

	mutex_lock(&hsm_genl_lock);
	listed = !list_empty(&hdev->genl_node);
	if (listed)
		list_del_init(&hdev->genl_node);
	mutex_unlock(&hsm_genl_lock);
	spin_lock_irqsave(&hdev->evt_lock, flags);
	hdev->evt_closed = true;
	spin_unlock_irqrestore(&hdev->evt_lock, flags);
	/* No work can be queued now; send what is left. */
	flush_work(&hdev->evt_work);
	hsm_genl_work(&hdev->evt_work);
	if (!listed)
		return;
	e.time_ns = ktime_get_real_ns();
	hsm_genl_send(hdev, &e, 0);
}

/**
 * hsm_genl_register() - register the netlink family (module init)
 *
 * Return: 0 or a negative errno.
 */
int __init hsm_genl_register(void)
{
	return genl_register_family(&hsm_genl_family);
}

/**
 * hsm_genl_unregister() - unregister the netlink family (module exit)
 */
void hsm_genl_unregister(void)
{
	genl_unregister_family(&hsm_genl_family);
}
