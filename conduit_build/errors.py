"""Every error the build tool reports, in one hierarchy.

    ConduitError            message + optional hint; exit status 1
      ├── ConfigError       conduit.yaml is wrong (one line per problem); exit 2
      ├── UsageError        bad command-line usage; exit 2
      ├── BuildError        the image did not build
      ├── EngineError       the Docker engine is unreachable or refused
      ├── RegistryError     push or pull failed
      ├── ContractError     `conduit test` found failures
      └── DeployError       a rollout failed

Only `cli.main()` catches these; it prints one `error: …` line per problem.
"""

from __future__ import annotations


class ConduitError(Exception):
    exit_status = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def lines(self) -> list[str]:
        return [self.message + (f" ({self.hint})" if self.hint else "")]


class ConfigError(ConduitError):
    """One or more problems in conduit.yaml, each already `file:line:col: key: text`."""

    exit_status = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems

    def lines(self) -> list[str]:
        return list(self.problems)


class UsageError(ConduitError):
    exit_status = 2


class BuildError(ConduitError):
    pass


class EngineError(ConduitError):
    pass


class RegistryError(ConduitError):
    pass


class ContractError(ConduitError):
    pass


class DeployError(ConduitError):
    pass
