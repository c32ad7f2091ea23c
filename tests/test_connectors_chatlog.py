"""Chat-log connector: every shared export parsed right (checked against the files), growth, formats.

The expected numbers below were counted from the export files themselves (by reading
them, or with grep / a few lines of json over the raw files), never from the parser.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors import ConnectorError, PollResult, build_connector
from connectors.chatlog import ChatLogConnector

CHATLOGS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "chatlogs"
UTC = timezone.utc


@pytest.fixture(scope="module")
def chatlogs() -> Path:
    if not CHATLOGS.is_dir():
        pytest.skip(f"shared chat logs not found at {CHATLOGS}")
    return CHATLOGS


def _poll(path: Path, state: dict | None = None, **options: object) -> PollResult:
    return ChatLogConnector("chats", {"path": str(path), **options}).poll(state or {})


def _lines(result: PollResult) -> list[str]:
    return [line for d in result.documents for line in d.text.splitlines() if not line.startswith("    ")]


def _speaker_counts(result: PollResult) -> Counter[str]:
    return Counter(line.split("] ", 1)[1].split(": ", 1)[0] for line in _lines(result))


def _t(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# (file, messages, {speaker: messages}, first message time, last message time, channels)
EXPORTS = [
    # 200 lines: 189 "[hh:mm] <nick>" lines (grep -c '^\[..:..\] <'), 11 "=== x is now known as y".
    ("irc/ubuntu-2015-02-04_15.raw.txt", 189, None, _t(2015, 2, 4, 14, 5), _t(2015, 2, 4, 16, 7), {"#ubuntu"}),
    # 169 lines: 150 "<nick>" lines + 4 "* nick" actions (bigdissaved x3, ron__) + 15 "===" lines.
    ("irc/ubuntu-2016-06-06_02.raw.txt", 154, None, _t(2016, 6, 6, 2, 16), _t(2016, 6, 6, 7, 29), {"#ubuntu"}),
    # 169 lines: 162 "<nick>" lines, 7 "===" lines.
    ("irc/ubuntu-2016-06-06_18.raw.txt", 162, None, _t(2016, 6, 6, 18, 4), _t(2016, 6, 6, 18, 59), {"#ubuntu"}),
    # 11 messages, one of them a photo without content; timestamp_ms 1675549022673 .. 1675597571851.
    ("langchain-community/examples_facebook_chat.json", 10, {"User 1": 5, "User 2": 5},
     _t(2023, 2, 4, 22, 17, 2, 673000), _t(2023, 2, 5, 11, 46, 11, 851000), {"User 1 and User 2 chat"}),
    # 5 rows in 3 day files, one a channel_join; U0500003428 is not in users.json, so the name
    # comes from the message's user_profile (real_name "Example User"). ts 1681413317 .. 1681413852.
    ("langchain-community/examples_slack_export.zip", 4, {"Example User": 4},
     _t(2023, 4, 13, 19, 15, 17, 397479), _t(2023, 4, 13, 19, 24, 12, 964959),
     {"#general", "#random", "#example-channel"}),
    # 10 lines in 7 different date styles; "<Media omitted>" and "This message was deleted" are
    # placeholders. 1/23/23 (23 > 12) makes the slash dates m/d/y; the y/m/d line has a 4-digit year.
    ("langchain-community/examples_whatsapp_chat.txt", 8,
     {"James": 1, "User name": 1, "User 2": 3, "User 1": 2, "User name 2": 1},
     _t(2021, 1, 24, 12, 41, 3), _t(2023, 5, 5, 15, 48, 11), {"examples_whatsapp_chat"}),
    # 12 lines: the end-to-end notice and 3 "image omitted" are not messages.
    ("langchain-community/unit_tests_chat_loaders_data_whatsapp_chat.txt", 8, {"Dr. Feather": 4, "Jungle Jane": 4},
     _t(2023, 8, 15, 9, 12, 43), _t(2023, 8, 15, 21, 25, 16), {"unit_tests_chat_loaders_data_whatsapp_chat"}),
    # 4 messages; date_unixtime 1692821483 .. 1692821753 (the "date" strings are local time, UTC-7).
    ("langchain-community/unit_tests_chat_loaders_data_telegram_chat_json_result.json", 4,
     {"Jimmeny Marvelton": 3, "Batman & Robin": 1}, _t(2023, 8, 23, 20, 11, 23), _t(2023, 8, 23, 20, 15, 53),
     {"Jimmeny"}),
    # 4 div.message.default; the 4th ("joined") has no from_name: same sender as the 3rd.
    # Titles "23.08.2023 13:11:23 UTC-08:00" .. "13:15:53 UTC-08:00".
    ("langchain-community/unit_tests_chat_loaders_data_telegram_chat_html_messages.html", 4,
     {"Jimmeny Marvelton": 3, "Batman & Robin": 1}, _t(2023, 8, 23, 21, 11, 23), _t(2023, 8, 23, 21, 15, 53),
     {"Jimmeny Marvelton"}),
    # 158 rows in 17 day files, minus 8 channel_join and 3 bot_add = 147: #enrique 30 plain +
    # 66 bot; #traveling-sailor 19 plain + 28 bot + 3 file_share + 1 file_comment. Bots are the
    # GitHub integration (named by the bot_add notices). Users by real_name from users.json.
    ("slack-export-viewer/testarchive.zip", 147,
     {"github": 94, "Hamza Faran": 33, "Hermione Granger": 14, "Harry Potter": 5, "heroeshannibal": 1},
     _t(2016, 1, 15, 5, 55, 52, 6), _t(2016, 3, 29, 12, 33, 6, 27), {"#enrique", "#traveling-sailor"}),
]


@pytest.mark.parametrize("relative, count, speakers, first, last, channels", EXPORTS, ids=[e[0] for e in EXPORTS])
def test_shared_export(chatlogs: Path, relative: str, count: int, speakers: dict[str, int] | None,
                       first: datetime, last: datetime, channels: set[str]) -> None:
    result = _poll(chatlogs / relative)
    assert result.warnings == []
    docs = result.documents
    assert sum(d.meta["message_count"] for d in docs) == count == len(_lines(result))
    if speakers is not None:
        assert _speaker_counts(result) == Counter(speakers)
    assert {d.meta["channel"] for d in docs} == channels
    assert min(datetime.fromisoformat(d.meta["first_message_at"]) for d in docs) == first
    assert max(d.published_at for d in docs) == last  # published_at = the window's last message
    for d in docs:
        assert d.id.startswith(f"chat:{Path(relative).name}#") and ".." in d.id
        assert set(d.meta["speakers"]) <= set(_speaker_counts(PollResult([d], {}, [])))
        assert d.meta["format"] and d.meta["file"] == Path(relative).name


def test_irc_speaker_counts(chatlogs: Path) -> None:
    # Distinct nicks, from grep -o '^\[..:..\] <[^>]*>' | sort -u | wc -l: 39, 43 and 19.
    names = ("ubuntu-2015-02-04_15.raw.txt", "ubuntu-2016-06-06_02.raw.txt", "ubuntu-2016-06-06_18.raw.txt")
    assert [len(_speaker_counts(_poll(chatlogs / "irc" / name))) for name in names] == [39, 43, 19]
    text = "\n".join(d.text for d in _poll(chatlogs / "irc" / "ubuntu-2016-06-06_02.raw.txt").documents)
    assert "[2016-06-06 06:01] bigdissaved: /me stares at walls" in text
    assert "is now known as" not in text


def test_whatsapp_text_and_windows(chatlogs: Path) -> None:
    result = _poll(chatlogs / "langchain-community" / "unit_tests_chat_loaders_data_whatsapp_chat.txt")
    # 9:12:43 AM .. 9:15:20 AM is one conversation; 9:25:16 PM, ten hours later, is another.
    assert [d.meta["message_count"] for d in result.documents] == [7, 1]
    assert result.documents[0].text.splitlines()[0] == (
        "[2023-08-15 09:12] Dr. Feather: I spotted a rare Hyacinth Macaw yesterday in the Amazon Rainforest."
        " Such a magnificent creature!")
    assert result.documents[1].text == "[2023-08-15 21:25] Jungle Jane: Looking forward to it! Keep up the great work."
    assert result.documents[1].author == "Jungle Jane" and result.documents[0].author is None
    assert result.documents[0].meta["speakers"] == ["Dr. Feather", "Jungle Jane"]


def test_whatsapp_date_styles(chatlogs: Path) -> None:
    text = "\n".join(d.text for d in _poll(chatlogs / "langchain-community" / "examples_whatsapp_chat.txt").documents)
    for line in ("[2023-05-05 15:48] James: Hi here",  # [dd.mm.yy, hh:mm:ss]
                 "[2021-11-08 09:41] User name: Message 123",  # [m/d/yy, h:mm:ss AM]
                 "[2023-01-23 03:22] User 1: And let me know if anything changes",  # "3:22_AM -"
                 "[2023-05-04 16:13] User 2: See you!",  # [yyyy/m/d, ...], "~ " before the name
                 "[2022-07-19 23:32] User 1: Hello",  # 11:32 PM with a narrow no-break space
                 "[2022-07-20 11:32] User 2: Goodbye"):  # lower-case am
        assert line in text


def test_whole_folder_and_second_poll(chatlogs: Path) -> None:
    result = _poll(chatlogs)
    assert result.warnings == []
    assert sum(d.meta["message_count"] for d in result.documents) == sum(e[1] for e in EXPORTS)  # 690
    assert len({d.id for d in result.documents}) == len(result.documents)
    json.dumps(result.state)
    again = _poll(chatlogs, result.state)
    assert again.documents == [] and again.warnings == []
    print(f"\nchat logs: {len(EXPORTS)} exports, {sum(e[1] for e in EXPORTS)} messages,"
          f" {len(result.documents)} conversation windows")


def test_window_limits(chatlogs: Path) -> None:
    path = chatlogs / "irc" / "ubuntu-2016-06-06_18.raw.txt"
    small = _poll(path, max_messages=10)
    assert max(d.meta["message_count"] for d in small.documents) == 10
    assert sum(d.meta["message_count"] for d in small.documents) == 162
    assert all(len(d.text) <= 500 or d.meta["message_count"] == 1 for d in _poll(path, max_chars=500).documents)
    assert len(_poll(path, gap_minutes=1).documents) > len(_poll(path, gap_minutes=120).documents)


# -- growth: only new messages come out -----------------------------------------------------


def test_whatsapp_growth(chatlogs: Path, tmp_path: Path) -> None:
    chat = tmp_path / "chat.txt"
    shutil.copy(chatlogs / "langchain-community" / "unit_tests_chat_loaders_data_whatsapp_chat.txt", chat)
    first = _poll(tmp_path)
    assert sum(d.meta["message_count"] for d in first.documents) == 8
    with chat.open("a", encoding="utf-8") as f:
        f.write("[8/15/23, 9:30:00 PM] Dr. Feather: Here is the draft.\nIt has two lines.\n"
                "[8/15/23, 9:31:00 PM] Jungle Jane: ok\n"
                "[8/15/23, 9:31:00 PM] Jungle Jane: ok\n")  # the same words twice: two messages
    second = _poll(tmp_path, first.state)
    assert len(second.documents) == 1
    doc = second.documents[0]
    assert doc.meta["message_count"] == 3
    assert doc.text == ("[2023-08-15 21:30] Dr. Feather: Here is the draft.\n    It has two lines.\n"
                        "[2023-08-15 21:31] Jungle Jane: ok\n[2023-08-15 21:31] Jungle Jane: ok")
    assert doc.id.startswith("chat:chat.txt#") and doc.published_at == _t(2023, 8, 15, 21, 31)
    assert _poll(tmp_path, second.state).documents == []


def test_slack_reexport_with_a_new_day(chatlogs: Path, tmp_path: Path) -> None:
    # A re-export is a new zip, not an appended file: old days come again, one day is new.
    export = tmp_path / "slack.zip"
    shutil.copy(chatlogs / "langchain-community" / "examples_slack_export.zip", export)
    first = _poll(tmp_path)
    new_day = [{"type": "message", "user": "U050FRJNFQS", "text": "Deploy done <@U050FRJNFQS>",
                "ts": "1681500000.000100"}]
    with zipfile.ZipFile(export, "a") as archive:
        archive.writestr("general/2023-04-14.json", json.dumps(new_day))
    second = _poll(tmp_path, first.state)
    assert [d.text for d in second.documents] == ["[2023-04-14 19:20] GitHub: Deploy done @GitHub"]
    assert second.documents[0].meta["channel"] == "#general"


def test_facebook_newest_first_growth(chatlogs: Path, tmp_path: Path) -> None:
    # Messenger writes the newest message first: a new one is prepended, not appended.
    export = tmp_path / "message_1.json"
    shutil.copy(chatlogs / "langchain-community" / "examples_facebook_chat.json", export)
    first = _poll(tmp_path)
    data = json.loads(export.read_text())
    data["messages"].insert(0, {"sender_name": "User 1", "timestamp_ms": 1675600000000,
                                "content": "Caf\u00c3\u00a9 at 5?"})  # Facebook's mojibake for "Café"
    export.write_text(json.dumps(data))
    second = _poll(tmp_path, first.state)
    assert [d.text for d in second.documents] == ["[2023-02-05 12:26] User 1: Café at 5?"]


def test_irc_growth_and_date_option(tmp_path: Path) -> None:
    log = tmp_path / "channel.log"  # no date in the name: irc_date gives it
    log.write_text("[23:58] <ann> late\n[23:59] <bob> very late\n")
    options = {"irc_date": "2024-02-28", "formats": {"*.log": "irc"}}
    first = _poll(tmp_path, **options)
    assert first.documents[0].text == "[2024-02-28 23:58] ann: late\n[2024-02-28 23:59] bob: very late"
    with log.open("a") as f:
        f.write("=== bob is now known as bobby\n[00:01] <bobby> past midnight\n")
    second = _poll(tmp_path, first.state, **options)
    assert [d.text for d in second.documents] == ["[2024-02-29 00:01] bobby: past midnight"]  # leap day


# -- other formats, from small hand-written exports -----------------------------------------


def test_discord_chat_exporter_json(tmp_path: Path) -> None:
    (tmp_path / "general.json").write_text(json.dumps({
        "guild": {"id": "1", "name": "Makers"},
        "channel": {"id": "2", "type": "GuildTextChat", "name": "general"},
        "messages": [
            {"id": "10", "type": "Default", "timestamp": "2024-03-01T09:00:00.123+00:00", "content": "Printer is fixed",
             "author": {"id": "7", "name": "ann", "nickname": "Ann"}},
            {"id": "11", "type": "GuildMemberJoin", "timestamp": "2024-03-01T09:01:00+00:00", "content": "",
             "author": {"id": "8", "name": "bob"}},
            {"id": "12", "type": "Reply", "timestamp": "2024-03-01T11:05:00+02:00", "content": "thanks!",
             "author": {"id": "8", "name": "bob", "nickname": None}},
            {"id": "13", "type": "Default", "timestamp": "2024-03-01T09:06:00+00:00", "content": "",
             "attachments": [{"url": "photo.png"}], "author": {"id": "7", "name": "ann"}},
        ],
    }))
    result = _poll(tmp_path)
    assert [d.text for d in result.documents] == [
        "[2024-03-01 09:00] Ann: Printer is fixed\n[2024-03-01 09:05] bob: thanks!"]
    assert result.documents[0].meta["channel"] == "Makers #general"


def test_telegram_html_line_breaks_replies_and_forwards(tmp_path: Path) -> None:
    message = ('<div class="message default clearfix" id="message{n}"><div class="body">'
               '<div class="pull_right date details" title="01.03.2024 09:0{n}:00">09:0{n}</div>{inner}</div></div>')
    (tmp_path / "messages.html").write_text(
        '<div class="page_wrap"><div class="page_header"><div class="text bold">Lab &amp; Co</div></div>'
        '<div class="history"><div class="message service"><div class="body details">1 March 2024</div></div>'
        + message.format(n=1, inner='<div class="from_name">Ann</div>'
                                     '<div class="text">line one<br>line <a href="#">two</a></div>')
        + message.format(n=2, inner='<div class="from_name">Bob</div><div class="reply_to details">In reply to'
                                     ' <a href="#go_to_message1">this message</a></div><div class="text">agreed</div>')
        + message.format(n=3, inner='<div class="from_name">Bob</div><div class="forwarded body">'
                                     '<div class="from_name">Cy</div><div class="text">forwarded news</div></div>')
        + message.format(n=4, inner='<div class="media_wrap clearfix">photo</div>')  # no text: skipped
        + "</div></div>")
    result = _poll(tmp_path)
    assert [d.text for d in result.documents] == [
        "[2024-03-01 09:01] Ann: line one\n    line two\n[2024-03-01 09:02] Bob: agreed\n"
        "[2024-03-01 09:03] Bob: forwarded news"]
    assert result.documents[0].meta["channel"] == "Lab & Co"


def test_jsonl_and_timezone(tmp_path: Path) -> None:
    (tmp_path / "notes.jsonl").write_text(
        '{"time": "2024-06-01T10:00:00", "speaker": "ann", "text": "office moves to Berlin", "channel": "team"}\n'
        "not json\n"
        '{"time": 1717229100, "speaker": "bob", "text": "when?", "channel": "team"}\n')
    result = _poll(tmp_path, timezone="Europe/Berlin")
    # The naive 10:00 is Berlin time (08:00 UTC); the epoch 1717229100 is 10:05 Berlin. Both shown in Berlin time.
    assert [d.text for d in result.documents] == ["[2024-06-01 10:00] ann: office moves to Berlin\n"
                                                  "[2024-06-01 10:05] bob: when?"]
    assert result.documents[0].published_at == _t(2024, 6, 1, 8, 5)
    assert result.warnings == [
        "chatlog notes.jsonl: line 2 skipped: JSONDecodeError: Expecting value: line 1 column 1 (char 0)"]


def test_whatsapp_day_first_dates(tmp_path: Path) -> None:
    (tmp_path / "WhatsApp Chat with Ann.txt").write_text(
        "01/09/2023, 10:00 - Ann: see you on the first\n15/08/2023, 21:25 - Bob: ok\n")
    result = _poll(tmp_path)  # 15 > 12: the whole file is day-first
    assert {d.text for d in result.documents} == {"[2023-09-01 10:00] Ann: see you on the first",
                                                  "[2023-08-15 21:25] Bob: ok"}
    assert result.documents[0].meta["channel"] == "Ann"


def test_one_bad_file_does_not_stop_the_folder(tmp_path: Path) -> None:
    (tmp_path / "good.jsonl").write_text('{"time": "2024-01-01T00:00:00Z", "speaker": "a", "text": "hi"}\n')
    (tmp_path / "broken.json").write_text('{"name": "x", "type": "personal_chat", "messages": [')  # truncated
    (tmp_path / "other.json").write_text('{"not": "a chat"}')
    (tmp_path / "README.md").write_text("ignored: not a chat file type")
    result = _poll(tmp_path)
    assert [d.meta["file"] for d in result.documents] == ["good.jsonl"]
    assert len(result.warnings) == 2
    assert result.warnings[0].startswith("chatlog broken.json: skipped: JSONDecodeError")
    assert result.warnings[1].startswith("chatlog other.json: not a recognised chat export")
    # The broken file is retried (and reported) next time; the unrecognised one is not.
    again = _poll(tmp_path, result.state)
    assert [w.split(":")[0] for w in again.warnings] == ["chatlog broken.json"]


def test_config_errors() -> None:
    with pytest.raises(ConnectorError, match="missing option"):
        build_connector("chatlog", "c", {})
    with pytest.raises(ConnectorError, match="not one of"):
        build_connector("chatlog", "c", {"path": ".", "formats": {"*.txt": "msn"}})
    with pytest.raises(ConnectorError, match="unknown timezone"):
        build_connector("chatlog", "c", {"path": ".", "timezone": "Mars/Olympus"})
    with pytest.raises(ConnectorError, match="does not exist"):
        build_connector("chatlog", "c", {"path": "/nonexistent/chats"}).poll({})
