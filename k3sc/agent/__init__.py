"""Everything an agent run needs outside Prefect: its git workspace, its process, its prompt.

The flow in `flows/agent.py` strings these together; nothing here imports Prefect, so each
part is usable (and tested) on its own:

* `workspace` - one persistent clone per (repo, agent), cleaned, on the issue branch, with
  the safety hooks and an environment-reading credential helper installed;
* `process` - run the agent CLI in its own process group, stream redacted lines, enforce
  the timeout;
* `streams` - read Claude stream-json / Codex JSONL into log lines, usage and a verdict;
* `prompts` - the prompt, the command line and the environment given to the agent.
"""
