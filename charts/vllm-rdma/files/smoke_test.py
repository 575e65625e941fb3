#!/usr/bin/env python3
"""helm test: the OpenAI-compatible API lists the served model and answers a one-token completion.

Usage: smoke_test.py BASE_URL SERVED_NAME
"""

import json
import sys
import urllib.request


def call(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def main() -> int:
    base, served = sys.argv[1].rstrip("/"), sys.argv[2]
    models = [m["id"] for m in call(f"{base}/v1/models").get("data", [])]
    if served not in models:
        print(f"helm-rdma test: {base}/v1/models lists {models}, not {served}")
        return 1
    answer = call(f"{base}/v1/completions", {"model": served, "prompt": "The capital of France is", "max_tokens": 1})
    text = (answer.get("choices") or [{}])[0].get("text")
    if text is None:
        print(f"helm-rdma test: the completion had no text: {json.dumps(answer)[:300]}")
        return 1
    print(f"helm-rdma test: {served} is served and answered {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
