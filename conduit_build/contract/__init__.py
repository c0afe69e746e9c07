"""The contract behind `conduit test` (DESIGN §3), checked over real HTTP.

    calls.py    each example as JSON and as a form; reading envelopes and error bodies
    streams.py  an example with `stream: true`: its Server-Sent Events read and checked
    suite.py    the checks, run_contract()
    report.py   the Report: text, JSON, JUnit XML
    servers.py  the server under test: local, a container, or a URL; the wait for /ready
    run.py      contract_test(): choose the server, run the suite, write JUnit
"""

from .calls import mismatch
from .report import Report
from .run import contract_test
from .suite import run_contract

__all__ = ["Report", "contract_test", "mismatch", "run_contract"]
