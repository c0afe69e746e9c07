"""The processes that serve: the draining server (server.py: `serve`, what an image's
entry point and `conduit serve` call), the supervisor of several workers
(supervisor.py) and a worker's entry point (worker.py)."""
