"""`voicebot protocol schema --protocol NAME`: the JSON Schema of a wire protocol."""

from __future__ import annotations

import argparse
import json

from voicebot.config import Settings
from voicebot.protocol.schema import PROTOCOLS, protocol_schema


def register(sub: argparse._SubParsersAction) -> None:
    protocol = sub.add_parser("protocol", help="the wire protocols (voicebot.v1, voicebot.agent.v1, twilio)")
    psub = protocol.add_subparsers(dest="protocol_command", metavar="ACTION", required=True)
    p = psub.add_parser(
        "schema", help="print one JSON object: the JSON Schema of everything a protocol sends and accepts",
        description="Prints {\"protocol\", \"discriminator\", \"client_to_server\", \"server_to_client\", "
                    "\"binary\"}; each direction is a JSON Schema (draft 2020-12) over its messages.",
    )
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="voicebot.v1",
                   help="which protocol (default voicebot.v1)")
    p.add_argument("--indent", type=int, default=None, help="pretty-print with this indent")
    p.set_defaults(handler=cmd_schema)


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(protocol_schema(args.protocol), ensure_ascii=False, indent=args.indent))
    return 0
