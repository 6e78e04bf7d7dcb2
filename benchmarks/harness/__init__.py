"""The reproduction harness behind ``benchmarks/reproduce.py``, one job a module:

* ``jobs``: the plan (models x variants x seeds), each job's config and effective settings, its state
  on disk, and the refusal of a started job whose settings changed;
* ``runner``: one child process at a time, under a lock, with heartbeats and a record per attempt;
* ``child``: the child's work: train with ``recbole_sigma.run``, evaluate by user group, write result.json;
* ``results``: reading a job folder (epochs, attempts, result); ``stats``: means, std, Welch p-values;
* ``report`` and ``plots``: the Markdown report and its figures; ``paper``: the paper's numbers, quoted;
* ``machine``: where and when a job ran (also the benchmarks' one-line description);
* ``cli``: the flags and ``main``.

Imported without side effects; the command line installs its SIGTERM handler when it runs jobs.
"""
