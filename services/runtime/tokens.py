"""Issue a bearer token for the local stack: ``python -m services.runtime.tokens --role approver --subject ...``.

It signs with the same settings the services read (``AUTH_SECRET``, ``AUTH_ISSUER``, ``AUTH_AUDIENCE``), so a
token printed here is accepted by a stack started from the same environment. Production issues tokens from
its identity provider instead; this tool is for operators and tests of the local stack.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta

from services.runtime.access import ROLES, TokenAuthority
from services.runtime.settings import ServiceSettings


def main(arguments: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.runtime.tokens", description=__doc__.splitlines()[0])
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--subject", required=True, help="the person or system acting, e.g. approver-1")
    parser.add_argument("--organisation", help="the organisation a partner token speaks for (partners only)")
    parser.add_argument("--minutes", type=int, default=60, help="lifetime of the token (default 60)")
    options = parser.parse_args(arguments)
    if options.minutes < 1:
        parser.error("--minutes must be at least 1")
    authority = TokenAuthority.from_settings(ServiceSettings())
    try:
        token = authority.issue(options.subject, options.role, organisation_id=options.organisation,
                                lifetime=timedelta(minutes=options.minutes))
    except ValueError as problem:
        parser.error(str(problem))
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
