"""Export and import: the replies, the dry run, row errors, refused files, undo, and the
request kinds ``import`` and ``import_undo``.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "export_queued": "正在生成权限表（{fmt}），稍后会私聊发给你。",
    "export_template_queued": "正在生成导入模板，稍后会私聊发给你。",
    "import_mode_add": "追加",
    "import_mode_replace": "替换",
    "import_armed": "好的：你接下来 1 小时内发给我的导入文件将以「{mode}」模式处理。{note}",
    "import_replace_note": "文件未列出的角色、授权和模板将被移除。",
    "import_title": "导入预览",
    "import_download_failed": "无法从钉钉下载文件 {name}，未做任何更改。请稍后重新发送。",
    "import_has_errors": (
        "文件 {name} 共 {rows} 行，其中 {n} 行有错误，因此**没有应用任何更改**。请修改后重新发送："
    ),
    "not_applied_import_undo_store_changed": (
        "该批次之后这些权限又被修改过，撤销会覆盖那些修改，因此未执行。请逐项核对后手动调整"
    ),
    "not_applied_import_store_changed": (
        "预览之后权限已被他人修改，为免覆盖这些修改，导入未执行。请重新导出、核对后再发送文件"
    ),
    "import_replace_still_armed": "\n替换模式仍然有效：改正后直接重新发送文件即可。",
    "import_no_changes": "文件 {name}（{rows} 行）与当前权限完全一致，无需更改。",
    "import_summary": (
        "文件 {name}（{mode}模式）：新增 {create}，更新 {update}，不变 {unchanged}，移除 {remove}。"
    ),
    "import_cli_summary": (
        "共 {rows} 行：新增 {create}，更新 {update}，不变 {unchanged}，错误 {errors}，"
        "移除 {remove}（{mode}模式）"
    ),
    "import_cli_has_errors": "文件有错误，没有应用任何更改。",
    "import_cli_dry_run": "预览：没有应用任何更改。",
    "import_cli_no_changes": "与当前权限一致，无需更改。",
    "import_cli_undone": "已撤销批次 {batch}：回退 {n} 项更改。",
    "import_cli_applied": "已作为批次 {batch} 应用 {n} 项更改（撤销：`导入 撤销 {batch}`）",
    "import_batch": "批次：{batch}（撤销：`导入 撤销 {batch}`）",
    "import_removals_list": "将移除以下 {n} 项：",
    "and_more_items": "……另有 {n} 项",
    "import_removals_file": "完整的移除清单已作为文件私聊发给你。",
    "import_removals": "替换模式：将移除文件中未列出的 {n} 项",
    "import_row_error": "第 {row} 行：错误，{why}",
    "import_row_hint": "{why}。{hint}",
    "import_row_create": "第 {row} 行：新增 {what}",
    "import_row_update": "第 {row} 行：更新 {what}",
    "and_more_rows": "……另有 {n} 行",
    "import_row_no_user": "缺少 user_id",
    "import_row_bad_user": "user_id「{user}」格式不对",
    "import_row_unknown_user": "Baton 不认识成员 {user}（请先让其给 Baton 发一条消息）",
    "import_row_bad_type": "type「{type}」应为 role、grant、template 或 level（角色、授权、模板、身份）",
    "import_row_no_value": "value 为空",
    "import_row_bad_time": "expires_at「{time}」不是日期时间，应写作 2026-12-31 或 2026-12-31T08:00:00+08:00",
    "import_row_expiry_not_grant": "只有 grant 行可以有 expires_at",
    "import_row_expired": "expires_at「{time}」已经过去",
    "import_row_builtin_role": "「{value}」是内置身份，不能导入",
    "import_row_unknown_role": "没有角色「{value}」",
    "import_row_unknown_permission": "权限目录中没有「{value}」",
    "import_row_unknown_template": "没有模板「{value}」",
    "import_row_level_differs": (
        "身份「{value}」与当前不符；身份只能通过 添加管理员/移除管理员/转让主管理员 更改"
    ),
    "import_row_duplicate": "与第 {other} 行重复",
    "import_row_two_roles": "与第 {other} 行冲突：每人只能有一个角色",
    "import_undo_unknown": "找不到已生效的导入批次「{batch}」。",
    "import_undo_twice": "批次 {batch} 已有撤销申请 {id}。",
    "import_undo_done": "批次 {batch} 已被撤销（撤销申请 {id} 已生效），无需再次撤销。",
    "describe_import_undo": "撤销导入批次 {batch}（{n} 项更改）",
    "subject_import": "导入文件 {file}（{n} 项更改）",
    "subject_import_undo": "导入批次 {batch}",
    "import_refused_too_large": (
        "文件 {name} 太大（{size_mb} MB，上限 {max_mb} MB，配置项 bulk.max_file_mb），未读取。"
        "请拆分后分批导入，或请运维调大 bulk.max_file_mb。"
    ),
    "import_refused_zip_bomb": "文件 {name} 解压后异常巨大（疑似压缩炸弹），拒绝读取。",
    "import_refused_too_many_rows": (
        "文件 {name} 超过 {max} 行（配置项 bulk.max_rows），拒绝读取。请拆分后分批导入，"
        "或请运维调大 bulk.max_rows。"
    ),
    "import_report_file": "共 {rows} 行：逐行的完整预览已作为文件私聊发给你。",
    "import_status_error": "错误",
    "import_status_create": "新增",
    "import_status_update": "更新",
    "import_status_unchanged": "不变",
    "export_over_title": "导出文件超出导入上限",
    "export_over_rows": (
        "注意：{name} 有 {rows} 行，超过导入上限 {max} 行（{setting}）。"
        "要把它再导入，请先在配置中调大 {setting}。"
    ),
    "export_over_size": (
        "注意：{name} 有 {size} MB，超过导入上限 {max} MB（{setting}）。"
        "要把它再导入，请先在配置中调大 {setting}。"
    ),
    "export_over_inflated": (
        "注意：{name} 解压后约 {size} MB，超过导入允许的 {max} MB（由 {setting} 决定）。"
        "要把它再导入，请先在配置中调大 {setting}。"
    ),
    "export_not_importable": (
        "注意：{name} 不会被导入接受（{code}）。要把它再导入，请先在配置中调大 {setting}。"
    ),
    "import_refused_not_workbook": "文件 {name} 不是有效的 Excel 工作簿，未读取。",
    "import_refused_macro": "文件 {name} 含有宏（.xlsm 或 vbaProject），出于安全原因拒绝。请另存为 .xlsx。",
    "import_refused_too_many_columns": "文件 {name} 列数过多，请使用导入模板的列。",
    "import_refused_bad_header": (
        "文件 {name} 的表头不对。需要列：user_id, name, type, value, expires_at, source"
        "（发送 `导出 模板` 获取模板）。"
    ),
    "import_refused_unreadable": "文件 {name} 无法安全读取，未做任何更改。",
    "import_refused_bad_encoding": "CSV 文件 {name} 的编码无法识别，请保存为 UTF-8。",
    "import_refused_empty": "文件 {name} 是空的。",
    "import_refused_wrong_type": "只能导入 .xlsx 或 .csv 文件，{name} 不是。",
    "import_in_group": "群聊中的文件 {name} 不会被导入，未做任何更改。导入文件请在与我的单聊中发送。",
    # The request kinds of this family: their names, card titles and card bodies.
    "kind_import": "批量导入",
    "card_title_import": "批量导入 {id}",
    "card_body_import": "{requester} 申请以下批量更改，需要另一位管理员审批：",
    "kind_import_undo": "撤销导入",
    "card_title_import_undo": "撤销导入 {id}",
    "card_body_import_undo": "{requester} 申请以下批量更改，需要另一位管理员审批：",
}


EN: Mapping[str, str] = {
    "export_queued": "Building the permission table ({fmt}); I will send it to you one-to-one.",
    "export_template_queued": "Building the import template; I will send it to you one-to-one.",
    "import_mode_add": "add",
    "import_mode_replace": "replace",
    "import_armed": (
        "OK: the next import file you send me within an hour is read in “{mode}” "
        "mode.{note}"
    ),
    "import_replace_note": " Roles, grants and templates the file does not list will be removed.",
    "import_title": "Import dry run",
    "import_download_failed": (
        "I could not download {name} from DingTalk; nothing changed. Please send it again later."
    ),
    "import_has_errors": (
        "{name} has {n} bad rows out of {rows}, so **nothing was applied**. Fix them and "
        "send the file again:"
    ),
    "not_applied_import_undo_store_changed": (
        "those permissions changed again after the batch, and undoing it would overwrite "
        "those changes, so nothing was undone. Check them and adjust by hand"
    ),
    "not_applied_import_store_changed": (
        "the permissions changed after the preview; so as not to overwrite those changes, "
        "nothing was imported. Export again, check, and send the file again"
    ),
    "import_replace_still_armed": "\nReplace mode is still on: correct the file and send it again.",
    "import_no_changes": "{name} ({rows} rows) matches the current permissions exactly; nothing to change.",
    "import_summary": (
        "{name} ({mode} mode): {create} to create, {update} to update, {unchanged} "
        "unchanged, {remove} to remove."
    ),
    "import_cli_summary": (
        "rows {rows}: create {create}, update {update}, unchanged {unchanged}, errors "
        "{errors}, remove {remove} ({mode} mode)"
    ),
    "import_cli_has_errors": "the file has errors; nothing was applied",
    "import_cli_dry_run": "dry run: nothing applied",
    "import_cli_no_changes": "nothing to change",
    "import_cli_undone": "undid batch {batch}: {n} changes rolled back.",
    "import_cli_applied": "applied {n} changes as batch {batch} (undo: `import undo {batch}`)",
    "import_batch": "Batch: {batch} (undo: `import undo {batch}`)",
    "import_removals_list": "These {n} will be removed:",
    "and_more_items": "…and {n} more",
    "import_removals_file": (
        "The full list of removals is in the file I am sending you "
        "one-to-one."
    ),
    "import_removals": "replace mode: {n} assignments the file does not list will be removed",
    "import_row_error": "row {row}: error, {why}",
    "import_row_hint": "{why}. {hint}",
    "import_row_create": "row {row}: create {what}",
    "import_row_update": "row {row}: update {what}",
    "and_more_rows": "…and {n} more rows",
    "import_row_no_user": "user_id is empty",
    "import_row_bad_user": "user_id “{user}” is malformed",
    "import_row_unknown_user": "Baton does not know member {user} (have them send Baton a message first)",
    "import_row_bad_type": "type “{type}” must be role, grant, template or level",
    "import_row_no_value": "value is empty",
    "import_row_bad_time": "expires_at “{time}” is not a date; write 2026-12-31 or 2026-12-31T08:00:00+08:00",
    "import_row_expiry_not_grant": "only grant rows may have an expires_at",
    "import_row_expired": "expires_at “{time}” is in the past",
    "import_row_builtin_role": "“{value}” is built in and cannot be imported",
    "import_row_unknown_role": "there is no role “{value}”",
    "import_row_unknown_permission": "there is no “{value}” in the catalog",
    "import_row_unknown_template": "there is no template “{value}”",
    "import_row_level_differs": (
        "level “{value}” differs from the store; levels change only through admin add/remove "
        "and transfer-owner"
    ),
    "import_row_duplicate": "duplicates row {other}",
    "import_row_two_roles": "conflicts with row {other}: one role per member",
    "import_undo_unknown": "There is no applied import batch “{batch}”.",
    "import_undo_twice": "Batch {batch} already has an undo request, {id}.",
    "import_undo_done": "Batch {batch} is already undone, by request {id}.",
    "describe_import_undo": "undo import batch {batch} ({n} changes)",
    "subject_import": "import of {file} ({n} changes)",
    "subject_import_undo": "import batch {batch}",
    "import_refused_too_large": (
        "{name} is too large ({size_mb} MB; the limit is {max_mb} MB, bulk.max_file_mb); "
        "not read. Split it, or ask the operator to raise bulk.max_file_mb."
    ),
    "import_refused_zip_bomb": "{name} expands to an abnormal size (a zip bomb?) and is refused.",
    "import_refused_too_many_rows": (
        "{name} has more than {max} rows (bulk.max_rows) and is refused; split it, or ask "
        "the operator to raise bulk.max_rows."
    ),
    "import_report_file": "{rows} rows: the full per-row dry run is sent to you as a file.",
    "import_status_error": "error",
    "import_status_create": "create",
    "import_status_update": "update",
    "import_status_unchanged": "unchanged",
    "export_over_title": "Export over the import limits",
    "export_over_rows": (
        "Note: {name} has {rows} rows, more than an import accepts ({max}, {setting}). "
        "Raise {setting} in the configuration before importing it back."
    ),
    "export_over_size": (
        "Note: {name} is {size} MB, more than an import accepts ({max} MB, {setting}). "
        "Raise {setting} in the configuration before importing it back."
    ),
    "export_over_inflated": (
        "Note: {name} inflates to about {size} MB, more than an import reads ({max} MB, "
        "set by {setting}). Raise {setting} in the configuration before importing it back."
    ),
    "export_not_importable": (
        "Note: an import would refuse {name} ({code}). Raise {setting} in the configuration "
        "before importing it back."
    ),
    "import_refused_not_workbook": "{name} is not a valid Excel workbook; not read.",
    "import_refused_macro": (
        "{name} contains macros (.xlsm or a VBA project) and is refused; save it as .xlsx."
    ),
    "import_refused_too_many_columns": "{name} has too many columns; use the template's columns.",
    "import_refused_bad_header": (
        "{name} has the wrong header. Columns: user_id, name, type, value, expires_at, "
        "source (send `export template` for the template)."
    ),
    "import_refused_unreadable": "{name} cannot be read safely; nothing changed.",
    "import_refused_bad_encoding": "CSV file {name} is not UTF-8 (or GB18030); save it as UTF-8.",
    "import_refused_empty": "{name} is empty.",
    "import_refused_wrong_type": "Only .xlsx and .csv files can be imported; {name} is neither.",
    "import_in_group": (
        "Files in a group are not imported, so {name} changed nothing. Send import files "
        "to me one-to-one."
    ),
    # The request kinds of this family: their names, card titles and card bodies.
    "kind_import": "Bulk import",
    "card_title_import": "Bulk import {id}",
    "card_body_import": "{requester} asks for these bulk changes; another admin must approve:",
    "kind_import_undo": "Undo an import",
    "card_title_import_undo": "Undo an import {id}",
    "card_body_import_undo": "{requester} asks for these bulk changes; another admin must approve:",
}
