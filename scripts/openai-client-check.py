#!/usr/bin/env python3
"""Checks a `wst serve` with the official `openai` Python client (what users run).

    openai-client-check.py model BASE_URL KEY MODEL   # a served model
    openai-client-check.py proxy BASE_URL KEY MODEL   # the WST proxy

Prints one `OK <check>` line per check; exits non-zero at the first failure.
"""
import sys
from concurrent.futures import ThreadPoolExecutor

import openai


def ok(what):
    print(f"OK {what}", flush=True)


def expect(exc, fn, what):
    try:
        fn()
    except exc as e:
        ok(f"{what} ({type(e).__name__} {e.status_code})")
        return e
    raise AssertionError(f"{what}: no {exc.__name__}")


def check_model(client, base, model):
    ids = [m.id for m in client.models.list()]
    assert model in ids, ids
    ok("models.list")
    q = [{"role": "user", "content": "What is 2 + 3?"}]

    r = client.chat.completions.create(model=model, messages=q, n=2, max_tokens=8, seed=7)
    assert len(r.choices) == 2, r
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in r.choices), r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    ok("n=2 gives 2 choices")

    again = client.chat.completions.create(model=model, messages=q, n=2, max_tokens=8, seed=7)
    texts = [c.message.content for c in r.choices]
    assert texts == [c.message.content for c in again.choices], (texts, again)
    other = client.chat.completions.create(model=model, messages=q, n=2, max_tokens=8, seed=8)
    assert texts != [c.message.content for c in other.choices], "seed 8 gave seed 7's choices"
    ok("same seed, same choices")

    g = client.chat.completions.create(model=model, messages=q, max_tokens=12, temperature=0)
    stream = client.chat.completions.create(
        model=model, messages=q, max_tokens=12, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == g.choices[0].message.content, (text, g.choices[0].message.content)
    assert finish == g.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == g.usage.completion_tokens, usage
    ok("stream concatenates to the completion at temperature 0")

    long = client.chat.completions.create(model=model, messages=q, max_completion_tokens=3, temperature=0)
    assert long.choices[0].finish_reason == "length" and long.usage.completion_tokens == 3, long
    ok("max_completion_tokens and finish_reason length")

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client.chat.completions.create, model=model,
                               messages=[{"role": "user", "content": f"Count to {i}."}],
                               max_tokens=6, temperature=0) for i in range(8)]
        alone = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Count to 3."}], max_tokens=6, temperature=0)
        answers = [f.result() for f in futures]
    assert all(len(a.choices) == 1 for a in answers)
    assert answers[3].choices[0].message.content == alone.choices[0].message.content
    ok("8 concurrent requests")

    expect(openai.BadRequestError, lambda: client.chat.completions.create(model=model, messages=[]),
           "empty messages")
    e = expect(openai.BadRequestError, lambda: client.chat.completions.create(
        model=model, messages=q, max_tokens=10**7), "prompt over the context")
    assert e.code == "context_length_exceeded", e.body
    expect(openai.BadRequestError, lambda: client.chat.completions.create(model=model, messages=q, n=1000),
           "n out of range")
    expect(openai.NotFoundError, lambda: client.chat.completions.create(model="no-such-model", messages=q),
           "unknown model")
    bad = openai.OpenAI(base_url=base, api_key="wrong-key", max_retries=0)
    expect(openai.AuthenticationError, lambda: bad.models.list(), "wrong key")


def check_proxy(client, model):
    q = [{"role": "user", "content": "What is 4 + 5?"}]
    r = client.chat.completions.create(model=model, messages=q, max_tokens=8, n=2)
    assert len(r.choices) == 2 and r.choices[0].message.content is not None, r
    wst = r.model_extra["wst"]
    assert wst["instruction"], wst
    assert wst["teacher_tokens"] > 0 and wst["teacher"], wst
    ok(f"proxy reply with instruction of {wst['teacher_tokens']} tokens")
    r = client.chat.completions.create(model=model, messages=q, max_tokens=8, extra_body={"wst_teacher": False})
    assert r.choices[0].message.content is not None
    assert (r.model_extra or {}).get("wst") is None, r.model_extra
    ok("wst_teacher false skips the teacher")


def main():
    mode, base, key, model = sys.argv[1:5]
    client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=300)
    if mode == "model":
        check_model(client, base, model)
    elif mode == "proxy":
        check_proxy(client, model)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
