"""Operations around the training loop (Lightning owns the loop itself).

* ``checkpoints``: atomic checkpoint writes, safe (weights_only) loads.
* ``resume``: a job's last checkpoint, RNG states and sampler position across a kill.
* ``faults``: a non-finite loss as a user error; SIGKILL injection for tests.
* ``ddp``: DDP under Hydra (which settings start several processes; what ranks > 0 run).
"""
