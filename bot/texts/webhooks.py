"""What Baton says about its webhooks: the alert when a subscriber is paused."""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "alert_webhook_paused": (
        "Webhook {name} 在事件 #{seq} 上连续 {attempts} 次投递失败，已暂停（最后错误：{error}）。"
        "修复接收端后运行 `baton webhooks replay {name} --from {seq}` 恢复。"
    ),
    "audit_action_webhook.paused": "Webhook 投递暂停",
    "audit_action_webhook.replay": "Webhook 从指定序号重放",
}

EN: Mapping[str, str] = {
    "alert_webhook_paused": (
        "webhook {name} is paused after {attempts} failed attempts at event #{seq} (last "
        "error: {error}). Once the receiver is fixed, `baton webhooks replay {name} --from "
        "{seq}` resumes it."
    ),
    "audit_action_webhook.paused": "webhook delivery paused",
    "audit_action_webhook.replay": "webhook replayed from a seq",
}
