"""Windows-only AWSTOE actions: recognised so documents validate with a clear message, never run."""

from __future__ import annotations

from kiln.toe.actions.base import WindowsAction


class ExecutePowerShell(WindowsAction):
    name = "ExecutePowerShell"


class InstallMSI(WindowsAction):
    name = "InstallMSI"


class UninstallMSI(WindowsAction):
    name = "UninstallMSI"


class SetRegistry(WindowsAction):
    name = "SetRegistry"
