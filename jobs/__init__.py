"""Kaldi-style job dispatch: one command line run as N jobs, on this machine or on Slurm.

    python3 -m jobs [--cmd local|"slurm SBATCH_OPTION..."] JOB=1:N LOGDIR/NAME.JOB.log COMMAND...

As Kaldi's ``run.pl``/``slurm.pl``: every ``JOB`` in the log path and in the command is the
job's number. Each job's output goes to its log, with a header (command, host, start) and a
footer (exit status, elapsed time); its exit status is written beside the log
(``NAME.K.status``) by the job itself, so a job that is killed or lost leaves none and is
reported as such. A job that succeeded leaves ``NAME.K.done`` holding the signature of its
command; the next run of the same command re-runs only the jobs without one (a failed job
alone). The dispatch exits 0 when every job succeeded and otherwise names each failed job
with its log and the log's last lines.
"""
