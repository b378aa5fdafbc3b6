"""The Python package against a real redis-server and a model the real trainer published."""

import json
import struct

import pytest

from freshet_serving import FreshetError, Scores, Serving


def impressions(path, limit=None):
    out = []
    with open(path) as f:
        for line in f:
            if '"impression"' in line:
                out.append(line.strip())
                if limit and len(out) == limit:
                    break
    return out


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def test_scores_equal_freshet_score(trainer, redis):
    expected = trainer.score(trainer.events)
    assert len(expected) > 1000
    with Serving("127.0.0.1", redis.port, trainer.prefix) as model:
        version = model.load()
        assert version == int(redis.cli("GET", "pytest:active"))
        assert model.manifest["version"] == str(version)
        assert model.scenarios == model.manifest["daemon"]["scenarios"]
        for line in impressions(trainer.events):
            got = model.score(line)
            want = expected[json.loads(line)["id"]]
            # the same float32 values the C command printed with %.9g
            assert (got.pctr, got.pcvr, got.pctcvr) == tuple(f32(x) for x in want)
            assert 0 < got.pctr < 1 and 0 < got.pcvr < 1
        assert model.stats.refused_rows == 0


def test_batch_equals_one_by_one_and_dicts_equal_text(trainer, redis):
    lines = impressions(trainer.events, 40)
    with Serving("127.0.0.1", redis.port, trainer.prefix) as model:
        model.load()
        one = [model.score(line) for line in lines]
        assert model.score_batch(lines) == one
        assert model.score_batch([json.loads(line) for line in lines]) == one
        assert model.score_batch([]) == []
        assert isinstance(one[0], Scores)


def test_refusals_are_errors_with_the_decoders_reason(trainer, redis):
    with Serving("127.0.0.1", redis.port, trainer.prefix) as model:
        with pytest.raises(FreshetError, match="no version"):
            model.score(impressions(trainer.events, 1)[0])
        model.load()
        bad = json.loads(impressions(trainer.events, 1)[0])
        bad["scenario"] = "radio"
        with pytest.raises(FreshetError, match="unknown_scenario"):
            model.score(bad)
        with pytest.raises(FreshetError, match="not an impression"):
            model.score({"type": "click", "id": "i-1", "ts": 1764547200000})
        with pytest.raises(FreshetError):
            model.score("{not json")
    with Serving("127.0.0.1", redis.port, "nothing_here") as empty:
        with pytest.raises(FreshetError):
            empty.load()
    with pytest.raises(FreshetError):
        Serving("127.0.0.1", redis.port, "bad prefix{")


def test_follows_a_push_and_a_rollback(trainer, redis, tmp_path):
    lines = impressions(trainer.events, 20)
    with Serving("127.0.0.1", redis.port, trainer.prefix) as model:
        first = model.load()
        before = model.score_batch(lines)
        assert not model.follow(block_ms=0)

        # a push: more input trained and published
        trainer.replay(trainer.later)
        assert model.follow(block_ms=2000)
        pushed = model.version
        assert pushed > first
        assert model.score_batch(lines) != before

        # an operator's rollback to the first version is followed, and so is its release
        trainer.run("rollback", "-c", trainer.config, "--to", str(first))
        assert model.follow(block_ms=2000)
        assert model.version == first
        assert model.manifest["version"] == str(first)
        # the dense weights are the first version's; rows are not versioned (docs/redis-layout.md), so the
        # scores are what `freshet score` gives now, not those of before the push
        sample = tmp_path / "sample.jsonl"
        sample.write_text("\n".join(lines) + "\n")
        expected = trainer.score(str(sample))
        for line, got in zip(lines, model.score_batch(lines)):
            assert tuple(got) == tuple(f32(x) for x in expected[json.loads(line)["id"]])
        trainer.run("rollback", "-c", trainer.config, "--release")


def test_nan_rows_are_refused_and_counted(trainer, redis, freshet_bin, tmp_path):
    # a model of its own under another prefix, so tampering leaves the others alone
    from conftest import Trainer
    t = Trainer(freshet_bin, str(tmp_path), redis.port, prefix="pynan")
    events = t.gen("e.jsonl", 3000, seed=9)
    t.replay(events)
    nan = "local a = redis.call('HGETALL', KEYS[1]); local nan = string.char(0, 0, 192, 127) " \
          "for i = 1, #a, 2 do local v = a[i + 1] " \
          "redis.call('HSET', KEYS[1], a[i], string.sub(v, 1, 12) .. string.rep(nan, (#v - 12) / 4)) end return #a / 2"
    for key in redis.cli("--scan", "--pattern", "pynan:emb:{t0n*").split():
        redis.cli("EVAL", nan, "1", key)
    with Serving("127.0.0.1", redis.port, "pynan") as model:
        model.load()
        scores = model.score_batch(impressions(events, 30))
        assert all(0 < s.pctr < 1 and 0 < s.pcvr < 1 for s in scores)
        assert model.stats.refused_rows > 0
