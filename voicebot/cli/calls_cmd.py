"""`voicebot calls list | show ID`: read the call store back."""

from __future__ import annotations

import argparse
import json
from typing import Any

from voicebot.config import Settings
from voicebot.store.factory import describe, get_call, list_calls


def register(sub: argparse._SubParsersAction) -> None:
    calls = sub.add_parser("calls", help="list and show recorded calls from the call store")
    csub = calls.add_subparsers(dest="calls_command", metavar="ACTION", required=True)
    p = csub.add_parser("list", help="the most recent calls, newest first")
    p.add_argument("-n", "--limit", type=int, default=30, help="how many (default 30)")
    p.add_argument("--status", help="only calls with this status (completed, interrupted, ...)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_list)
    p = csub.add_parser("show", help="one call: its turns, intents, handoffs (and events with --events)")
    p.add_argument("call_id", help="a call id, or an unambiguous prefix of one")
    p.add_argument("--events", action="store_true", help="also print every event")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.set_defaults(handler=cmd_show)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    rows = list_calls(settings.store, limit=args.limit, status=args.status)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no calls in {describe(settings.store)}")
        return 0
    print(f"{'call id':34} {'started (UTC)':20} {'dur':>6} {'status':12} {'by':6} {'intent':16} {'route':14} turns")
    for row in rows:
        print(f"{row['call_id'][:34]:34} {row['started_at'][:19].replace('T', ' '):20} {_duration(row):>6} "
              f"{row['status']:12} {row['handled_by']:6} {row['last_intent'] or '-':16} {row['route'] or '-':14} "
              f"{row['turns']}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    call = get_call(settings.store, args.call_id)
    if call is None:
        print(f"voicebot: no call {args.call_id!r} (or the prefix is ambiguous) in {describe(settings.store)}")
        return 1
    if args.json:
        print(json.dumps(call, ensure_ascii=False, indent=2))
        return 0
    print(f"call      {call['call_id']}  ({call['protocol']})")
    print(f"started   {call['started_at']}   ended {call['ended_at'] or '-'}   duration {_duration(call)}")
    print(f"status    {call['status']}   handled by {call['handled_by']}"
          + (f" ({call['agent_id']})" if call.get("agent_id") else ""))
    print(f"intent    first {call['first_intent'] or '-'}, last {call['last_intent'] or '-'}   "
          f"route {call['route'] or '-'}   handoff {call['handoff'] or '-'}")
    if call.get("caller"):
        print(f"caller    {json.dumps(call['caller'], ensure_ascii=False)}")
    print()
    intents = {i["turn_idx"]: i for i in call["intents"]}
    for turn in call["turns_list"]:
        who = _SPEAKER_LABELS.get(turn["speaker"], "BOT   ")
        conf = f"  [asr {turn['confidence']:.2f}]" if turn.get("confidence") is not None else ""
        print(f"{who} {turn['text']}{conf}")
        decision = intents.get(turn["idx"]) if turn["speaker"] == "caller" else None
        if decision:
            alts = ", ".join(f"{a['label']} {a['confidence']:.2f}" for a in decision["alternatives"][:2])
            slots = ", ".join(f"{k}={v}" for k, v in decision["slots"].items())
            print(f"       intent {decision['label']} ({decision['confidence']:.2f}; {alts})"
                  + (f"  slots {slots}" if slots else ""))
    for handoff in call["handoffs"]:
        summary = handoff["context"].get("summary") if isinstance(handoff["context"], dict) else None
        print(f"\nHANDOFF {handoff['reason']}" + (f": {summary}" if summary else ""))
    for event in call.get("events", []):
        if event.get("type") == "wrapup":  # the agent's wrap-up code, after a human handled the call
            print(f"WRAPUP {event.get('label') or event.get('code')} ({event.get('agent_id')})"
                  + (f": {event['note']}" if event.get("note") else ""))
    if args.events:
        print()
        for event in call["events"]:
            print(json.dumps(event, ensure_ascii=False))
    return 0


_SPEAKER_LABELS = {"caller": "CALLER", "bot": "BOT   ", "agent": "AGENT "}


def _duration(row: dict[str, Any]) -> str:
    from datetime import datetime

    if not row.get("ended_at"):
        return "-"
    seconds = (datetime.fromisoformat(row["ended_at"]) - datetime.fromisoformat(row["started_at"])).total_seconds()
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
