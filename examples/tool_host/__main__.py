"""``python -m examples.tool_host [--host 127.0.0.1] [--port 8790] [--token T]``."""

from __future__ import annotations

import argparse
import os

import uvicorn

from examples.tool_host import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="proxy_ext reference tool host")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8790, help="port (default 8790)")
    parser.add_argument("--token", default=os.environ.get("TOOL_HOST_TOKEN"),
                        help="require X-Tool-Token: <token> on every request (default: $TOOL_HOST_TOKEN, else none)")
    args = parser.parse_args()
    uvicorn.run(create_app(args.token), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
