"""Set-up, demo, test and stop scripts, and the service harness they share (`ops.services`)."""
