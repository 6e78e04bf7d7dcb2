"""Train and evaluate a sequential recommender through RecBole.

    python run_recbole_sigma.py --model=SIGMA --dataset=amazon-beauty --data_path=../shared/datasets
    python run_recbole_sigma.py --model=SASRec --dataset=ml-100k --epochs=1

Any other --key=value is a RecBole config key. Installed as the ``recbole-sigma`` command.
"""
import sys

from recbole_sigma.cli import main

if __name__ == "__main__":
    sys.exit(main())
