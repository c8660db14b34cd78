"""Built-in node pieces: normalisation, fillers, rules, audio helpers, registry and configs."""

from __future__ import annotations

import asyncio
import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.nodes import (
    AudioFrame,
    BadInputError,
    NodeConfigError,
    NodeContext,
    ReplyText,
    TranscriptText,
    UnknownNodeTypeError,
    default_registry,
)
from streams.nodes.audio import (
    chunk_pcm16,
    parse_wav,
    resample_pcm16,
    resample_pcm16_reference,
)
from streams.nodes.respond import RulesConfig, RulesNode
from streams.nodes.stt import grammar_from_phrases
from streams.nodes.text import drop_fillers, normalize_text
from tests.nodes.conftest import RULES

CTX = NodeContext(session_id="s", turn_id="t", node_id="n", correlation_id="c")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Turn ON the Kitchen-Lights!", "turn on the kitchen lights"),
        ("  um, what's   the time?  ", "what's the time"),
        ("Set a timer for twenty five minutes.", "set a timer for 25 minutes"),
        ("uh play, uh, some music", "play some music"),
        ("ninety nine red balloons", "99 red balloons"),
        ("thirty", "30"),
        ("", ""),
    ],
)
def test_normalize_text(raw: str, clean: str) -> None:
    assert normalize_text(raw) == clean


@given(st.text(max_size=60))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


def test_drop_fillers_handles_phrases() -> None:
    words = ("um", "uh", "you know")
    assert drop_fillers("um you know play you some music uh", words) == "play you some music"


def test_rules_pick_first_match_and_default() -> None:
    node = RulesNode(RulesConfig.model_validate(
        {"rules": [*RULES, {"intent": "greet", "match_any": ["re:^(hi|hello)\\b"], "reply": "Hi."}],
         "default_reply": "Sorry."}))
    assert node.reply_for("set a timer for 5 minutes") == ReplyText("Timer set for five minutes.", "timer")
    assert node.reply_for("Hello there") == ReplyText("Hi.", "greet")
    assert node.reply_for("stopwatch") == ReplyText("Sorry.", "default")  # word boundary, not prefix

    async def outputs(item: TranscriptText) -> list[object]:
        return [o async for o in node.process(item, CTX)]

    assert asyncio.run(outputs(TranscriptText("stop", final=False))) == []  # partials ignored
    assert asyncio.run(outputs(TranscriptText("stop", final=True))) == [ReplyText("Stopping.", "stop")]


def test_nodes_reject_the_wrong_item_type() -> None:
    factory = default_registry().create("text.normalize", node_id="n", config={})

    async def feed() -> None:
        async for _ in factory().process(AudioFrame(b"\0\0", 16000, 0), CTX):
            pass

    with pytest.raises(BadInputError, match="takes TranscriptText"):
        asyncio.run(feed())


def test_stt_rejects_wrong_sample_rate() -> None:
    factory = default_registry().create("stt.pocketsphinx", node_id="stt", config={"keywords": ["stop"]})

    async def feed() -> None:
        async for _ in factory().process(AudioFrame(b"\0" * 882, 22050, 7), CTX):
            pass

    with pytest.raises(BadInputError, match="seq=7"):
        asyncio.run(feed())


@pytest.mark.parametrize(
    ("type_name", "config", "message"),
    [
        ("text.normalize", {"lowercase": "yes"}, "field 'lowercase': Input should be a valid boolean"),
        ("text.normalize", {"shout": True}, "field 'shout': Extra inputs are not permitted"),
        ("stt.pocketsphinx", {}, "needs 'jsgf' or 'keywords'"),
        ("stt.pocketsphinx", {"keywords": ["frobnicate the zzyzx"]}, "not in the pocketsphinx dictionary"),
        ("respond.rules", {"rules": [], "default_reply": "x"}, "field 'rules': .*at least 1 item"),
        ("respond.rules", {"rules": [{"intent": "a", "match_any": ["re:("], "reply": "b"}],
                           "default_reply": "x"}, "bad regex"),
        ("tts.espeak_ng", {"rate_wpm": 10}, "field 'voice': Field required; field 'rate_wpm'"),
    ],
)
def test_bad_configs_fail_at_build_naming_the_node(
    type_name: str, config: dict[str, object], message: str
) -> None:
    with pytest.raises(NodeConfigError, match=message):
        default_registry().create(type_name, node_id="n1", config=config)


def test_registry_hook_for_extensions() -> None:
    registry = default_registry()
    assert registry.types() == ("respond.rules", "stt.pocketsphinx", "text.drop_fillers",
                                "text.normalize", "tts.espeak_ng")
    with pytest.raises(UnknownNodeTypeError, match=r"ext\.echo"):
        registry.create("ext.echo", node_id="e", config={})
    normalize = registry.kind("text.normalize").build
    registry.register("ext.echo", normalize, deterministic=True)
    assert registry.kind("ext.echo").origin == "extension"
    with pytest.raises(NodeConfigError, match="already registered"):
        registry.register("text.normalize", normalize, deterministic=True)


def test_grammar_from_phrases() -> None:
    assert grammar_from_phrases(["Stop!", "play some music", "stop"]) == (
        "#JSGF V1.0;\ngrammar rspp;\npublic <utterance> = ( play some music ) | ( stop );\n"
    )


def test_decoders_carry_only_the_grammar_words_with_every_pronunciation() -> None:
    from streams.nodes.stt import PocketsphinxConfig, _new_decoder

    grammar = PocketsphinxConfig(keywords=("what time is it", "turn on the lights")).grammar()
    decoder = _new_decoder(grammar, 16000)
    assert decoder.lookup_word("time") == "T AY M"
    assert decoder.lookup_word("the(2)") == "DH IY"  # variants kept: "the" as DH AH and DH IY
    # The other ~135k words are not loaded: that is what keeps a new decoder cheap.
    assert decoder.lookup_word("banana") is None


def test_resample_is_exact_and_sized() -> None:
    src = array("h", [0, 1000, 2000, 3000, 4000, -4000] * 3675).tobytes()  # 1 s at 22050 Hz
    out = resample_pcm16(src, 22050, 16000)
    assert len(out) == 16000 * 2
    samples = array("h")
    samples.frombytes(out)
    assert samples[0] == 0 and samples[1] == 1378  # 22050/16000 = 1.378 of the 0->1000 ramp
    assert resample_pcm16(src, 22050, 16000) == out
    with pytest.raises(BadInputError):
        resample_pcm16(b"\0\0\0", 22050, 16000)


@settings(max_examples=200, deadline=None)
@given(
    samples=st.lists(st.integers(-32768, 32767), max_size=400),
    src_rate=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
    dst_rate=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]),
)
def test_resample_matches_the_integer_formula_bit_for_bit(
    samples: list[int], src_rate: int, dst_rate: int
) -> None:
    pcm = array("h", samples).tobytes()
    assert resample_pcm16(pcm, src_rate, dst_rate) == resample_pcm16_reference(pcm, src_rate, dst_rate)


def test_parse_wav_tolerates_streaming_placeholder_sizes() -> None:
    pcm = b"\x01\x00\x02\x00"
    header = (b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 44100, 2, 16)
              + b"data" + struct.pack("<I", 0x7FFFFFFF))
    assert parse_wav(header + pcm) == (pcm, 22050)
    with pytest.raises(BadInputError):
        parse_wav(b"RIFF\0\0\0\0WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 2, 22050, 0, 4, 16))


def test_chunks_are_20ms() -> None:
    chunks = list(chunk_pcm16(b"\0" * 1500, sample_rate=16000))
    assert [len(c) for c in chunks] == [640, 640, 220]
