"""One attempt of one case, split by concern; :mod:`blackbox_sync.qa.execute` runs them.

- :mod:`.job`: what an executor gets (:class:`~.job.AttemptJob`, it pickles);
- :mod:`.errors`: which infrastructure error an exception stands for;
- :mod:`.recording`: every frame with its arrival time, and the transcript;
- :mod:`.state`: what the attempt found so far (checks, turns, variables, how it ended);
- :mod:`.tools`: the case's scripted tool answers;
- :mod:`.checks`: turn and conversation checks;
- :mod:`.chat`: text turns, :mod:`.voice`: the turns of a ``webCall`` case;
- :mod:`.result`: the finished :class:`~blackbox_sync.qa.results.Attempt`.

Each module imports only those above it in this list, so there is no cycle.
"""
