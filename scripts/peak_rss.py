#!/usr/bin/env python3
"""Runs a command and prints its peak resident set size in MB on stderr (the child's
ru_maxrss), passing its exit code through. Usage: peak_rss.py CMD ARGS..."""
import resource
import subprocess
import sys

rc = subprocess.run(sys.argv[1:]).returncode
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"peak_rss_mb={kb / 1024:.1f}", file=sys.stderr)
sys.exit(rc)
