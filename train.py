"""Train one job, or a sweep with -m. Everything is configured in conf/ (see README).

    python train.py                                        # the packaged defaults
    python train.py -m freeze=none,all,last2 'seed=range(10)'
"""

from tunelab.app import main

if __name__ == "__main__":
    main()
