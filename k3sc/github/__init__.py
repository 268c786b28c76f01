"""k3sc's GitHub adapter: the only code that talks to GitHub (see README.md beside this file).

    async with GitHubClient.from_config(config) as gh:
        scan = await gh.workflow_issues(repo.repo for repo in config.repos)

Importing this package imports httpx and pydantic but not githubkit; githubkit loads when
a client is opened, so nothing that merely imports the package pays for it.
"""

from k3sc.github.client import GitHubClient
from k3sc.github.commenting import Comment
from k3sc.github.credentials import AppCredentials, Credentials, TokenCredentials
from k3sc.github.ratelimit import RateBudget
from k3sc.github.scanning import IssueSnapshot, RepoFailure, Scan
from k3sc.github.transports import cache_dir

__all__ = [
    "AppCredentials",
    "Comment",
    "Credentials",
    "GitHubClient",
    "IssueSnapshot",
    "RateBudget",
    "RepoFailure",
    "Scan",
    "TokenCredentials",
    "cache_dir",
]
