"""Frame mutators for the fuzz tests: structural (on the parsed JSON) and on the text."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import orjson

DATA = Path(__file__).parent.parent / "data"

INTERESTING: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    -(2**63) - 1,
    10**400,
    1e308,
    -1e-308,
    0.5,
    "",
    "x" * 10_000,
    "\u0000",
    "\ud800",
    "é🎧",
    "inf",
    "NaN",
    "-1",
    "1.5",
    "%%%",
    "AAAA",
    "AA=",
    [],
    [None],
    {},
    {"type": "audio/pcm", "rate": 0},
    {"type": "audio/pcm", "rate": -24000},
    {"type": "audio/pcmu"},
    [[[[[]]]]],
)


def ga_seeds() -> list[str]:
    """Every server frame of the GA transcripts in tests/data."""
    lines = (DATA / "openai_ga_transcripts.txt").read_text().splitlines()
    return [line[3:] for line in lines if line.startswith("s> ")]


def twilio_seeds() -> list[str]:
    sid = "MZ0123456789abcdef0123456789abcdef"
    return [
        '{"event":"connected","protocol":"Call","version":"1.0.0"}',
        '{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC0123",'
        '"streamSid":"' + sid + '","callSid":"CA0123","tracks":["inbound"],'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},'
        '"customParameters":{"caller":"+15550100"}},"streamSid":"' + sid + '"}',
        '{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1",'
        '"timestamp":"5","payload":"//////////8="},"streamSid":"' + sid + '"}',
        '{"event":"mark","sequenceNumber":"4","streamSid":"' + sid + '",'
        '"mark":{"name":"item_1:20"}}',
        '{"event":"dtmf","streamSid":"' + sid + '","sequenceNumber":"5",'
        '"dtmf":{"track":"inbound_track","digit":"1"}}',
        '{"event":"stop","sequenceNumber":"6","streamSid":"' + sid + '",'
        '"stop":{"accountSid":"AC0123","callSid":"CA0123"}}',
    ]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def mutate_structure(message: Any, rnd: random.Random, pool: list[Any]) -> Any:
    """One to three edits of a parsed frame: replace, delete or add a field, or swap types."""
    message = copy.deepcopy(message)
    for _ in range(rnd.randint(1, 3)):
        paths = _paths(message)
        path = rnd.choice(paths)
        if not path:
            message = copy.deepcopy(rnd.choice(pool)) if rnd.random() < 0.05 else message
            continue
        parent, key = _get(message, path[:-1]), path[-1]
        op = rnd.random()
        if op < 0.5:
            parent[key] = copy.deepcopy(rnd.choice(pool))
        elif op < 0.7:
            if isinstance(parent, dict):
                del parent[key]
            else:
                parent.pop(key)
        elif op < 0.85:
            if isinstance(parent, dict):
                name = rnd.choice(["x", "type", "delta", "item", "response", "id"])
                parent[name] = copy.deepcopy(rnd.choice(pool))
            else:
                parent.append(copy.deepcopy(rnd.choice(pool)))
        else:  # the same value as another JSON type
            old = parent[key]
            parent[key] = [old] if rnd.random() < 0.5 else str(old)
    return message


def mutate_text(frame: str, rnd: random.Random) -> str | bytes:
    """Byte-level damage: flips, cuts, splices, duplicated spans, odd encodings."""
    data = bytearray(frame.encode())
    op = rnd.random()
    if op < 0.3 and data:
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
    elif op < 0.5:
        data = data[: rnd.randrange(len(data) + 1)]
    elif op < 0.65 and data:
        start = rnd.randrange(len(data))
        end = min(len(data), start + rnd.randint(1, 40))
        data[start:start] = data[start:end] * rnd.randint(1, 3)
    elif op < 0.8:
        data.insert(rnd.randrange(len(data) + 1), rnd.choice(b'{}[]",:\\0-e.'))
    else:
        return bytes(data) if rnd.random() < 0.5 else bytes(data).decode("latin-1")
    try:
        return data.decode()
    except UnicodeDecodeError:
        return bytes(data)


def mutants(seeds: list[str], rnd: random.Random, pool: list[Any], count: int) -> list[str | bytes]:
    out: list[str | bytes] = []
    for _ in range(count):
        seed = rnd.choice(seeds)
        if rnd.random() < 0.7:
            out.append(json.dumps(mutate_structure(orjson.loads(seed), rnd, pool)))
        else:
            out.append(mutate_text(seed, rnd))
    return out
