"""The sessions view on the fixed synthetic snapshot, for SVG snapshot tests (`app` is what
pytest-textual-snapshot runs)."""

from zoneinfo import ZoneInfo

from k3sc.tui.sessions_app import SessionsApp
from tests.sessions import fakes

app = SessionsApp(fakes.snapshot, refresh_seconds=3600, zone=ZoneInfo("UTC"))

if __name__ == "__main__":
    app.run()
