#!/usr/bin/env python3
"""helm test: the OpenAI-compatible API lists the served model and answers a one-token completion.

Usage: smoke_test.py BASE_URL SERVED_NAME
VLLM_API_KEY, when set, is sent as the bearer token (vLLM requires it on /v1 when it was started with a key).
"""

import json
import os
import sys
import urllib.request


def call(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get("VLLM_API_KEY", "").strip():  # blanks are not part of the key (files/api_auth.py)
        headers["Authorization"] = "Bearer " + os.environ["VLLM_API_KEY"].strip()
    request = urllib.request.Request(url, data=data, headers=headers)
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
