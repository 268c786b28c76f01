"""The sessions view with no running session but an active block (snapshot test)."""

from zoneinfo import ZoneInfo

from k3sc.tui.sessions_app import SessionsApp
from tests.sessions import fakes

app = SessionsApp(lambda: fakes.snapshot(with_sessions=False), refresh_seconds=3600, zone=ZoneInfo("UTC"))

if __name__ == "__main__":
    app.run()
