"""The sandbox's own terminal lines (``baton sandbox``), per language: plain text printed to the
terminal, never markdown (Baton's replies come from the bot's catalogue).
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "failed": "  沙盒无法执行「{line}」：{error}。沙盒继续运行；/help 列出可用的输入。",
    "unknown_command": "  沙盒没有 {cmd} 这个命令。/help 列出可用的输入；要对 Baton 说的话不要以 / 开头。",
    "bad_quotes": "  无法读取这一行：{error}。请检查引号是否成对。",
    "no_user": "  没有这位示例成员；/users 列出所有成员",
    "as_usage": "  用法：/as <成员>（userId 或名字）；/users 列出所有成员",
    "now_as": "  现在以 {name}（{user_id}）的身份说话",
    "in_group_name": "管理群「{title}」（{cid}）",
    "in_dm_name": "你与 Baton 的单聊",
    "now_in": "  现在在{where}",
    "in_unknown": "  没有「{name}」这个会话，你仍在{here}。可以进入的会话：\n{listing}",
    "in_usage": "  用法：/in <会话>，你现在在{here}。可以进入的会话：\n{listing}",
    "click_usage": "  用法：/click <动作> [卡片编号]，例如 /click approve",
    "click_no_card": "  还没有卡片可以点击。",
    "click_unknown_card": "  没有编号为 {card} 的卡片。现有卡片：{cards}（/cards 列出它们的标题）。",
    "file_usage": "  用法：/file <文件路径>，例如 /file baton-sandbox-files/edited.xlsx",
    "file_unreadable": "  无法读取文件 {path}：{error}。未发送任何内容。",
    "file_too_big": "  文件 {path} 有 {size} 字节，超过沙盒能发送的 {limit} 字节。未发送任何内容。",
    "file_sent": "  {name}（{size} 字节）已由 {who} 在单聊中发给 Baton",
    "console_usage": (
        "  用法：/console owner <成员>（模拟钉钉管理后台更换主管理员），"
        "/console admin add|remove <成员>（在后台添加或移除子管理员），"
        "/console role add|remove <角色> <成员>（在后台给或取消角色标签）。钉钉现在的管理员："
        "主管理员 {owner}；子管理员 {admins}"
    ),
    "console_same": "  {who} 已经是钉钉的主管理员，后台没有更改。",
    "console_inactive": "  {who} 已停用，钉钉后台不能把他/她设为主管理员；没有更改。",
    "console_done": (
        "  钉钉管理后台（模拟）：主管理员已改为 {to}，{was} 不再是管理员。"
        "请在后台步骤卡片上点 Done（/click done），让 Baton 到钉钉核实。"
    ),
    "console_admin_added": "  钉钉管理后台（模拟）：{who} 已成为子管理员；org_admin_add 事件已推送给 Baton。",
    "console_admin_removed": (
        "  钉钉管理后台（模拟）：{who} 不再是子管理员；org_admin_remove 事件已推送给 Baton。"
    ),
    "console_admin_same": "  钉钉后台里 {who} 已经是这样了，没有更改。",
    "leave_usage": "  用法：/leave <成员>（模拟该成员离职：钉钉通讯录停用并推送 user_leave_org）",
    "leave_done": "  钉钉（模拟）：{who} 已离职；user_leave_org 事件已推送给 Baton。",
    "leave_already": "  {who} 已经离职（停用），没有更改。",
    "nobody": "无",
    "roles_off": "  这个沙盒没有开启钉钉角色同步（integrations.dingtalk_roles）。",
    "roles_head": "  钉钉（模拟）角色组「{group}」中的角色标签（同步模式 {mode}）：",
    "roles_not_made": "（钉钉里还没有这个角色）",
    "console_role_usage": (
        "  用法：/console role add|remove <角色> <成员>，模拟在钉钉管理后台给成员加上或去掉角色"
        "标签（未经 Baton），/console role deny|allow（应用失去或恢复角色调用的权限）。同步的角色：{roles}"),
    "console_role_unknown": "  Baton 不同步「{role}」这个角色。同步的角色：{roles}",
    "console_role_has": "  钉钉里 {who} 已经有「{role}」标签，没有更改。",
    "console_role_lacks": "  钉钉里 {who} 没有「{role}」标签，没有更改。",
    "console_role_added": (
        "  钉钉管理后台（模拟）：{who} 加上了角色标签「{group}/{role}」。钉钉不会通知 Baton；"
        "/reconcile 立即对账。"),
    "console_role_removed": (
        "  钉钉管理后台（模拟）：{who} 去掉了角色标签「{group}/{role}」。钉钉不会通知 Baton；"
        "/reconcile 立即对账。"),
    "console_role_denied": (
        "  钉钉（模拟）：应用没有通讯录管理权限了，钉钉拒绝每个角色调用（60011）。"
        "/console role allow 恢复。"),
    "console_role_allowed": "  钉钉（模拟）：应用有通讯录管理权限，角色调用恢复正常。",
    "reconcile_unread": (
        "  角色对账没能读取钉钉的角色标签（钉钉拒绝或调用失败），没有比较；权限被拒时 Baton 在告警群"
        "只提醒一次。下次对账会再试。"),
    "reconcile_clean": "  角色对账完成（{mode}）：钉钉与 Baton 一致，没有差异。",
    "reconcile_found": "  角色对账完成（{mode}）：{n} 处差异，已审计；Baton 把摘要发到告警群。",
    "roles_missing": "{role}：钉钉缺 {who}（{fix}）",
    "roles_extra": "{role}：钉钉多了 {who}（{fix}）",
    "reconcile_fix_add": "enforce：Baton 给钉钉加上",
    "reconcile_fix_remove": "enforce：Baton 从钉钉去掉",
    "reconcile_fix_none": "report：只告警，不更改钉钉",
    "reconcile_slow": "  角色对账在 {seconds} 秒内没有运行完；稍后用 /roles 查看。",
    "reconcile_failed": "  角色对账失败（详见日志），稍后会重试。",
    "calls_none": "  沙盒里没有运行中的 Baton，无法统计调用次数。",
    "calls_total": (
        "  共 {total} 次钉钉 API 调用；本月计费 {metered} 次，"
        "预算 {budget} 次（dingtalk.monthly_call_budget）"),
    "files_at": "Baton 发送的文件保存在 {path}",
    "api_at": (
        "决策 API：{url}（演示令牌 {token}）\n  试试：curl -H 'Authorization: Bearer {token}' "
        "'{url}/check?user=zhaoliu&permission=crm.customer.view'"),
    "files_bad": "--files {path}：无法创建这个文件夹（{error}）。请换一个可写的文件夹。",
    "file_saved": "文件 {name}，已保存到 {path}",
    "file_missing": "文件 {name}（模拟器中没有它的上传，未保存）",
    "no_answer": "  （Baton 在 {seconds} 秒内没有回应）",
}


EN: Mapping[str, str] = {
    "failed": (
        "  The sandbox could not do “{line}”: {error}. It carries on; /help lists "
        "what you can type."
    ),
    "unknown_command": (
        "  The sandbox has no command {cmd}. /help lists what you can type; what you "
        "say to Baton does not start with /."
    ),
    "bad_quotes": "  This line cannot be read: {error}. Check that its quotes are paired.",
    "no_user": "  no such demo member; /users lists them",
    "as_usage": "  usage: /as <user> (userId or name); /users lists them",
    "now_as": "  now speaking as {name} ({user_id})",
    "in_group_name": "the admin group {title} ({cid})",
    "in_dm_name": "your one-to-one chat with Baton",
    "now_in": "  now in {where}",
    "in_unknown": (
        "  There is no conversation “{name}”; you are still in {here}. The "
        "conversations are:\n{listing}"
    ),
    "in_usage": "  usage: /in <conversation>; you are in {here}. The conversations are:\n{listing}",
    "click_usage": "  usage: /click <action> [card id], e.g. /click approve",
    "click_no_card": "  There is no card to click yet.",
    "click_unknown_card": "  There is no card {card}. The cards are: {cards} (/cards lists their titles).",
    "file_usage": "  usage: /file <path>, e.g. /file baton-sandbox-files/edited.xlsx",
    "file_unreadable": "  The file {path} cannot be read: {error}. Nothing was sent.",
    "file_too_big": (
        "  The file {path} is {size} bytes, more than the {limit} bytes the sandbox "
        "sends. Nothing was sent."
    ),
    "file_sent": "  {name} ({size} bytes) sent to Baton one-to-one by {who}",
    "console_usage": (
        "  usage: /console owner <user> (plays the DingTalk admin console changing the "
        "main administrator), /console admin add|remove <user> (adds or removes a "
        "sub-administrator there), /console role add|remove <role> <user> (gives or takes a "
        "role label there). DingTalk's administrators now: main {owner}; sub {admins}"
    ),
    "console_same": (
        "  {who} is already DingTalk's main administrator; the console "
        "changed nothing."
    ),
    "console_inactive": (
        "  {who} is inactive; the DingTalk console cannot make them "
        "the main administrator. Nothing changed."
    ),
    "console_done": (
        "  DingTalk admin console (simulated): the main administrator is now {to}; "
        "{was} is no longer an administrator. Press Done on the console step's card "
        "(/click done) for Baton to check DingTalk."
    ),
    "console_admin_added": (
        "  DingTalk admin console (simulated): {who} is now a sub-administrator; "
        "org_admin_add pushed to Baton."
    ),
    "console_admin_removed": (
        "  DingTalk admin console (simulated): {who} is no longer a sub-administrator; "
        "org_admin_remove pushed to Baton."
    ),
    "console_admin_same": "  {who} is that already in DingTalk's console; nothing changed.",
    "leave_usage": (
        "  usage: /leave <user> (plays the member leaving the company: inactive in "
        "DingTalk's directory, user_leave_org pushed)"
    ),
    "leave_done": "  DingTalk (simulated): {who} has left; user_leave_org pushed to Baton.",
    "leave_already": "  {who} has left already (inactive); nothing changed.",
    "nobody": "none",
    "roles_off": "  DingTalk role sync (integrations.dingtalk_roles) is off in this sandbox.",
    "roles_head": "  Role labels in the simulated DingTalk's role group {group} (sync mode {mode}):",
    "roles_not_made": "(no such role in DingTalk yet)",
    "console_role_usage": (
        "  usage: /console role add|remove <role> <user> (plays the DingTalk admin console "
        "giving or taking a role label, not through Baton), /console role deny|allow (the app "
        "loses or regains the permission for role calls). The synced roles: {roles}"),
    "console_role_unknown": "  Baton does not sync a role “{role}”. The synced roles: {roles}",
    "console_role_has": "  {who} carries the {role} label in DingTalk already; nothing changed.",
    "console_role_lacks": "  {who} does not carry the {role} label in DingTalk; nothing changed.",
    "console_role_added": (
        "  DingTalk admin console (simulated): {who} now carries the role label {group}/{role}. "
        "DingTalk does not tell Baton; /reconcile compares now."),
    "console_role_removed": (
        "  DingTalk admin console (simulated): {who} no longer carries the role label "
        "{group}/{role}. DingTalk does not tell Baton; /reconcile compares now."),
    "console_role_denied": (
        "  DingTalk (simulated): the app has lost the contacts-management permission; every "
        "role call is refused (60011). /console role allow gives it back."),
    "console_role_allowed": (
        "  DingTalk (simulated): the app has the contacts-management permission; role calls "
        "are answered again."),
    "reconcile_unread": (
        "  The role reconcile could not read DingTalk's role labels (DingTalk refused or "
        "failed the call), so nothing was compared; a refusal is alerted once in the admin "
        "group. The next reconcile tries again."),
    "reconcile_clean": "  Role reconcile done ({mode}): DingTalk matches Baton, no differences.",
    "reconcile_found": (
        "  Role reconcile done ({mode}): {n} difference(s), audited; Baton posts the "
        "summary to the alert group."),
    "roles_missing": "{role}: DingTalk lacks {who} ({fix})",
    "roles_extra": "{role}: DingTalk also has {who} ({fix})",
    "reconcile_fix_add": "enforce: Baton adds it in DingTalk",
    "reconcile_fix_remove": "enforce: Baton removes it from DingTalk",
    "reconcile_fix_none": "report: alerted only, DingTalk unchanged",
    "reconcile_slow": "  The role reconcile did not finish within {seconds} s; /roles shows it later.",
    "reconcile_failed": "  The role reconcile failed (see the log); it is retried later.",
    "calls_none": "  No Baton runs in this chat, so there are no calls to count.",
    "calls_total": (
        "  {total} DingTalk API calls in all; {metered} metered this month, of a budget of "
        "{budget} (dingtalk.monthly_call_budget)"),
    "files_at": "Files Baton sends are saved in {path}",
    "api_at": (
        "Decision API: {url} (demo token {token})\n  try: curl -H 'Authorization: Bearer {token}' "
        "'{url}/check?user=zhaoliu&permission=crm.customer.view'"),
    "files_bad": (
        "--files {path}: the folder cannot be created ({error}). Give a folder "
        "you can write to."
    ),
    "file_saved": "file {name}, saved to {path}",
    "file_missing": "file {name} (the simulator has no upload of it; not saved)",
    "no_answer": "  (Baton did not answer within {seconds} s)",
}

HELP_ZH = """沙盒聊天。可以输入：
  <文字>              以当前成员的身份在当前会话里说这句话
                      （@名字 按名字提及示例成员，例如 转让主管理员 @李四）
  /as <成员>          换成另一位成员说话（userId 或名字）
  /in group|dm        管理群，或你与 Baton 的单聊
  /click <动作> [卡片]   点击最新卡片（或给出编号的卡片）上的按钮
                      （approve、reject、accept、decline……）
  /file <路径>        像钉钉那样在单聊中把文件发给 Baton（例如改好的导出表，用于导入）
  /console owner <成员>   模拟钉钉管理后台：把 <成员> 设为主管理员（主管理员转让的
                      后台步骤；之后在后台步骤卡片上 /click done）；只输入 /console
                      列出管理员
  /console admin add|remove <成员>   模拟钉钉管理后台添加或移除子管理员（未经 Baton：
                      Baton 收到事件后发出采纳/忽略卡片，主管理员 /click adopt 或 ignore）
  /leave <成员>       模拟成员离职（Baton 收到 user_leave_org，结束其全部权限）
  /roles              钉钉（模拟）里 Baton 同步的角色标签：角色 → 成员
                      （设置角色 @赵六 sales 会给赵六加上「销售」标签）
  /console role add|remove <角色> <成员>   模拟在钉钉管理后台给或去掉角色标签（未经 Baton）
  /console role deny|allow   模拟应用失去或恢复通讯录管理权限（角色调用被拒 60011）
  /reconcile          立即运行角色对账：enforce 模式下修正钉钉，摘要发到告警群
  /calls              Baton 调用钉钉 API 的次数，按 API 列出（与 /metrics 相同）
  /users  /cards  /help  /quit"""

HELP_EN = """Sandbox chat. Lines you type:
  <text>              say it as the current member in the current conversation
                      (@名字 mentions a demo member by name, e.g. 转让主管理员 @李四)
  /as <user>          speak as another member (userId or name)
  /in group|dm        the admin group, or your one-to-one chat with Baton
  /click <action> [card]   click a button (approve, reject, accept, decline...) on the
                      newest card, or on the card whose id you give
  /file <path>        send a file to Baton one-to-one, as DingTalk does (e.g. an edited
                      export to import)
  /console owner <user>   play the DingTalk admin console: make <user> the main
                      administrator (the console step of an owner transfer; then
                      /click done on the console card); /console alone lists the admins
  /console admin add|remove <user>   play the console adding or removing a
                      sub-administrator, not through Baton: Baton alerts it with an
                      adopt / ignore card for the owner (/click adopt or ignore)
  /leave <user>       play a member leaving the company (Baton gets user_leave_org and
                      ends everything they hold)
  /roles              the role labels Baton syncs, as the simulated DingTalk holds them:
                      role -> members (role set @赵六 sales puts the 销售 label on 赵六)
  /console role add|remove <role> <user>   play the console giving or taking a role
                      label, not through Baton
  /console role deny|allow   play the app losing (or regaining) the permission for role
                      calls: DingTalk refuses them with 60011
  /reconcile          run the role reconcile now: in enforce mode it fixes DingTalk, and
                      its summary goes to the alert group
  /calls              the DingTalk API calls Baton made, by API (as /metrics counts them)
  /users  /cards  /help  /quit"""
