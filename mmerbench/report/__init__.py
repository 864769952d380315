"""Reports: console tables now; leaderboards and paper tables build on the same rows."""
