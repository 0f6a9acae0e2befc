"""Server side of the routine tests: runs, storage, schedule, policy, console commands."""
