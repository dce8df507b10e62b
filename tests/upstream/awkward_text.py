"""Model responses shared by the upstream fidelity tests."""

# Responses that stress a formatter: braces and format fields, backslashes and escapes, quotes, emoji,
# the TRACE sentinel, whitespace only, the empty string, and text longer than ComplexBench keeps.
AWKWARD = [
    "",
    "{}",
    "{ans} {description} {format_str} {0} {prompt!r}",
    "{{doubled}} }{ {",
    "C:\\new\\table \\n \\t \\\\ \\u4e2d",
    "\"double\" 'single' “中文引号” ‘’ ``` '''",
    "😀👍🏽 🇨🇳 e\u0301 \u200b\ufeff",
    "NULL",
    " \t\n\n \r\n",
    "%s %(x)s $x ${x}",
    "答案：是\nConstraints Overall Score: [[10]]\n检查点\t1\n\n",
    "长" * 4100 + "尾",
]

# The ones a run sends to the judge (a blank response is failed without a call).
SENT = [text for text in AWKWARD if text.strip()]
