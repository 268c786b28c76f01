"""`k3sc top` on the fixed fleet with the security source failing and GitHub slow, for the SVG
snapshots (`app` is what pytest-textual-snapshot runs). GitHub answers when the app closes."""

from zoneinfo import ZoneInfo

from k3sc.tui.top_app import TopApp
from tests.top import fakes

source = fakes.FakeSource(failing=["security"], slow=["github"], slow_for=30.0)


class SnapshotApp(TopApp):
    def on_unmount(self) -> None:
        source.gate.set()  # let the slow worker finish so the app can close at once


app = SnapshotApp(
    source,
    fakes.CONFIG,
    prefect_seconds=3600,
    github_seconds=3600,
    zone=ZoneInfo("UTC"),
    clock=lambda: fakes.NOW,
)

if __name__ == "__main__":
    app.run()
