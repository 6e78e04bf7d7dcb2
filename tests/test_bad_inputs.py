"""Issue 18's probes: each bad input is one line on stderr, exit code 2, before training starts.

Every probe runs the command line in-process on a tiny generated dataset with a checkpoint folder
that must stay empty (no epoch was trained); RecBole's log goes to a temporary working folder."""
import contextlib
import io
import logging

import pytest

from recbole_sigma.cli import main
from tests.conftest import TINY, TINY_DATA_KEYS, write_atomic_dataset

TINY_ARGS = [f"--{k}={v!r}" for k, v in {**TINY, **TINY_DATA_KEYS, "hidden_size": 8, "d_state": 4}.items()]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """main(args) on the 'tiny' dataset -> (exit code, stdout, stderr); asserts no checkpoint was written."""
    monkeypatch.chdir(tmp_path)  # RecBole's log/ folder
    data = tmp_path / "data"
    write_atomic_dataset(data)
    saved = tmp_path / "saved"

    def run(*args, model="SIGMA", dataset="tiny"):
        out, err = io.StringIO(), io.StringIO()
        argv = [f"--model={model}", f"--dataset={dataset}", f"--data_path={data}", f"--checkpoint_dir={saved}"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv + TINY_ARGS + list(args))
        return code, out.getvalue(), err.getvalue()

    run.data = data / "tiny"
    yield run
    assert not saved.exists() or not any(saved.iterdir()), "a checkpoint was written: training started"


def assert_one_line(code, err, *fragments):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("arg, fragments", [
    ("--learning_rate=-1", ["learning_rate=-1", "a number > 0"]),
    ("--train_batch_size=0", ["train_batch_size=0", "an integer >= 1"]),
    ("--eval_batch_size=0", ["eval_batch_size=0", "an integer >= 1"]),
    ("--topk=[0]", ["topk=[0]", "an integer >= 1 or a list of them"]),
    ("--metrics=['Bogus']", ["no metric named 'Bogus'", "NDCG"]),
    ("--valid_metric=Foo@10", ["valid_metric='Foo@10'", "hit@10"]),
    ("--MAX_ITEM_LIST_LENGTH=0", ["MAX_ITEM_LIST_LENGTH=0", "an integer >= 1"]),
    ("--hidden_size=abc", ["SIGMA: hidden_size='abc'", "an integer >= 1"]),
    ("--num_layers=0", ["SIGMA: num_layers=0", "an integer >= 1"]),
])
def test_bad_config_value_is_one_line_before_training(cli, arg, fragments):
    assert_one_line(*cli(arg)[::2], *fragments)


def test_unknown_model(cli):
    assert_one_line(*cli(model="SIGMO")[::2], "unknown model 'SIGMO'")


def test_missing_config_file(cli, tmp_path):
    assert_one_line(*cli(f"--config_files={tmp_path / 'absent.yaml'}")[::2], "absent.yaml", "cannot be read")


def test_missing_dataset(cli):
    assert_one_line(*cli(dataset="no-such-set")[::2], "'no-such-set' not found at data_path")


def test_dataset_left_empty_by_filtering(cli):
    assert_one_line(*cli("--user_inter_num_interval='[100,inf)'")[::2], "no interactions left after filtering")


def test_line_without_separators(cli):
    lines = (cli.data / "tiny.inter").read_text().splitlines()
    lines[3] = lines[3].replace("\t", " ")
    (cli.data / "tiny.inter").write_text("\n".join(lines) + "\n")
    assert_one_line(*cli()[::2], "tiny.inter, line 4: 1 field(s); expected 3 (user_id, item_id, timestamp)")


def test_non_numeric_float_value(cli):
    lines = (cli.data / "tiny.inter").read_text().splitlines()
    lines[5] = lines[5].rsplit("\t", 1)[0] + "\tyesterday"
    (cli.data / "tiny.inter").write_text("\n".join(lines) + "\n")
    assert_one_line(*cli()[::2], "tiny.inter, line 6: timestamp='yesterday' is not a number")


@pytest.mark.parametrize("content, fragment", [
    ("", "line 1: the file is empty"),
    ("user_id:token\titem_id:token\ttimestamp:float\n", "line 2: no data lines"),
    ("user_id\titem_id:token\ttimestamp:float\nu\ti\t1\n", "line 1: header column 'user_id' is not name:type"),
    ("user_id:token\titem_id:token\ttimestamp:date\nu\ti\t1\n", "line 1: header column 'timestamp:date' is not name:type"),
    ("user_id:token\titem_id:token\nu\ti\n", "line 1: no 'timestamp' column"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\t\t1\n", "line 2: item_id is '', which RecBole reads as missing"),
    ("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\textra\n", "line 2: 4 field(s); expected 3"),
])
def test_malformed_atomic_file(cli, content, fragment):
    (cli.data / "tiny.inter").write_text(content)
    assert_one_line(*cli()[::2], "tiny.inter, " + fragment)


def test_time_field_not_loaded_with_order_to(cli):
    assert_one_line(*cli("--load_col={'inter': ['user_id', 'item_id']}")[::2],
                    "load_col / unload_col leave out 'timestamp'", "TIME_FIELD")


def test_load_col_field_absent_from_the_file(cli):
    assert_one_line(*cli("--load_col={'inter': ['user_id', 'item_id', 'timestamp', 'rating']}")[::2],
                    "load_col names 'rating'")


@pytest.mark.parametrize("arg, fragment", [
    ("--eval_args={'split': {'RS': [0.8, 0.2]}}", "eval_args split="),
    ("--eval_args=[1]", "eval_args=[1] is invalid"),
    ("--eval_args={'order': 'XO'}", "eval_args order='XO'"),
    ("--metrics=5", "metrics=5 is invalid"),
    ("--valid_metric=3", "valid_metric=3"),
    ("--topk='ten'", "topk='ten'"),
    ("--stopping_step=-1", "stopping_step=-1"),
    ("--epochs=0", "epochs=0"),
    ("--eval_step=2", "eval_step=2 is more than epochs=1"),
    ("--learning_rate=[0.1]", "learning_rate=[0.1]"),
    ("--train_neg_sample_args={'distribution': 'uniform', 'sample_num': 1}", "loss_type='CE'"),
    ("--repeatable=False", "RecBole rejects the config: Sequential models"),
    ("--seed=4294967296", "seed=4294967296 is invalid; expected an integer in [0, 2**32)"),
    ("--state=3", "state=3 is invalid; expected one of info, debug"),
    ("--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'group_by': 'items'}", "group_by='items'"),
])
def test_more_recbole_keys(cli, arg, fragment):
    assert_one_line(*cli(arg)[::2], fragment)


def test_group_by_none_in_any_case_is_accepted_as_recbole_does():
    from recbole_sigma.config_checks import _check_eval_args

    for group_by in ("none", "None", "NONE", None, "user"):
        _check_eval_args({"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": group_by},
                          "MODEL_TYPE": None, "metrics": ["NDCG"]})


def test_checkpoint_dir_that_is_a_file_is_one_line_before_training(cli, tmp_path):
    (tmp_path / "a_file").write_text("")
    assert_one_line(*cli(f"--checkpoint_dir={tmp_path / 'a_file'}")[::2], "is a file, not a folder")


def test_sasrec_dropout_takes_no_auto(cli):
    assert_one_line(*cli("--hidden_dropout_prob='auto'", "--train_neg_sample_args=None", model="SASRec")[::2],
                    "SASRec: hidden_dropout_prob='auto' is invalid; expected a number in [0, 1)")


def test_a_seed_that_leaves_numpys_range_on_a_later_rank_is_refused():
    from recbole_sigma.config_checks import _check_process_keys
    from recbole_sigma.errors import ConfigError

    _check_process_keys({"seed": 2 ** 32 - 2, "nproc": 2, "state": "INFO"})  # ranks 0, 1: the last seed allowed
    with pytest.raises(ConfigError, match="expected seed < 4294967295"):
        _check_process_keys({"seed": 2 ** 32 - 1, "nproc": 2, "state": "info"})
    _check_process_keys({"seed": 2 ** 32 - 1, "nproc": 1, "state": None})


def test_sasrec_heads_must_divide_hidden_size(cli):
    assert_one_line(*cli("--hidden_size=10", "--n_heads=3", "--train_neg_sample_args=None", model="SASRec")[::2], "not a multiple of n_heads=3")


def test_bert4rec_needs_a_masked_item(cli):
    assert_one_line(*cli("--MAX_ITEM_LIST_LENGTH=4", model="BERT4Rec")[::2], "BERT4Rec: MAX_ITEM_LIST_LENGTH=4",
                    ">= 5")


def test_training_error_is_one_line_with_the_traceback_in_the_log_file(tmp_path, monkeypatch):
    """A non-finite loss: one line on the console; the log file RecBole opened holds the traceback."""
    import recbole_sigma
    from tests.test_pipeline import bare_root_logger

    calculate_loss = recbole_sigma.SIGMA.calculate_loss
    monkeypatch.setattr(recbole_sigma.SIGMA, "calculate_loss", lambda *a: calculate_loss(*a) * float("nan"))
    monkeypatch.chdir(tmp_path)
    write_atomic_dataset(tmp_path / "data")
    err = io.StringIO()
    args = ["--model=SIGMA", "--dataset=tiny", f"--data_path={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'saved'}", "--state='ERROR'", *TINY_ARGS]
    with bare_root_logger(), contextlib.redirect_stderr(err):
        code = main(args)
        for handler in logging.getLogger().handlers:
            handler.flush()
    assert code == 2
    last = err.getvalue().splitlines()[-1]  # (above it: RecBole's warning about pytest's own arguments)
    assert last.startswith("error: SIGMA on tiny: training loss is nan at epoch 0, batch 0"), err.getvalue()
    assert "Traceback" not in err.getvalue()
    logs = list((tmp_path / "log").rglob("*.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "NonFiniteLossError" in text


def test_item_file_is_checked_when_load_col_loads_it(cli):
    (cli.data / "tiny.item").write_text("item_id:token\tprice:float\ni1\t9.5\ni2\tcheap\n")
    assert_one_line(*cli("--load_col={'inter': ['user_id', 'item_id', 'timestamp'], 'item': ['item_id', 'price']}")[::2],
                    "tiny.item, line 3: price='cheap' is not a number")
    (cli.data / "tiny.item").write_text("price:float\n9.5\n")
    assert_one_line(*cli("--load_col={'inter': ['user_id', 'item_id', 'timestamp'], 'item': '*'}")[::2],
                    "tiny.item, line 1: no 'item_id' column, which the run needs as ITEM_ID_FIELD")


def _scan_config(folder, **keys):
    """What check_atomic_files reads of a Config, for tiny.inter in ``folder`` (tab-separated, ordered by time)."""
    return {"data_path": str(folder), "dataset": "tiny", "benchmark_filename": None, "additional_feat_suffix": None,
            "load_col": None, "unload_col": None, "field_separator": "\t", "seq_separator": " ", "encoding": None,
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
            "eval_args": {"order": "TO"}, "MODEL_TYPE": None, **keys}


def test_unloaded_columns_are_not_read_but_every_line_is_counted(tmp_path):
    """A float column load_col leaves out may hold anything (RecBole never parses it); the field
    count still holds for every line, since pandas splits every line."""
    from recbole_sigma.data_checks import check_atomic_files

    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "tiny.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\tprice:float\n"
                                       "u\ti\t1\tcheap\n\n   \nu\ti\t2\t3\n")
    config = _scan_config(folder, load_col={"inter": ["user_id", "item_id", "timestamp"]})
    check_atomic_files(config)  # the blank lines (empty, or spaces only) are skipped, as pandas does
    from recbole_sigma.errors import ConfigError

    with pytest.raises(ConfigError, match="load_col and unload_col both name fields of the inter file"):
        check_atomic_files({**config, "unload_col": {"inter": ["price"]}})
    (folder / "tiny.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\tprice:float\nu\ti\t1\n")
    from recbole_sigma.errors import DataFileError

    with pytest.raises(DataFileError, match=r"tiny.inter, line 2: 3 field\(s\); expected 4"):
        check_atomic_files(config)


def _scan(folder, text, **keys):
    """check_atomic_files on tiny.inter holding ``text``, and pandas' read of it as RecBole's _load_feat reads it."""
    import pandas as pd

    from recbole_sigma.data_checks import check_atomic_files

    (folder / "tiny.inter").write_bytes(text.encode())
    config = _scan_config(folder, **keys)
    check_atomic_files(config)
    return pd.read_csv(folder / "tiny.inter", delimiter=config["field_separator"], dtype=str, engine="python")


def test_an_item_list_metric_is_a_valid_metric_at_each_topk():
    """ItemCoverage, GiniIndex, ... report name@k as the ranking metrics do: GiniIndex@10 is computed (and runs,
    with the Collector fix), plain GiniIndex would be a KeyError after the first epoch."""
    from recbole_sigma.config import checked_config
    from recbole_sigma.errors import ConfigError

    settings = {"metrics": ["Hit", "GiniIndex"], "topk": [10]}
    assert checked_config("SASRec", "ml-100k", config_dict={**settings, "valid_metric": "GiniIndex@10"})
    with pytest.raises(ConfigError, match="valid_metric='GiniIndex' is not one of the computed metrics; expected one "
                                          "of hit@10, giniindex@10"):
        checked_config("SASRec", "ml-100k", config_dict={**settings, "valid_metric": "GiniIndex"})


def test_sequential_benchmark_files_need_each_rows_history_not_a_time(tmp_path):
    """benchmark_filename: the files are the splits and each row holds its history (item_id_list), so no
    TIME_FIELD is needed (RecBole neither sorts nor augments them); a missing history column or file is one line."""
    import recbole_sigma
    from recbole_sigma.errors import DataFileError

    folder = tmp_path / "seqbench"
    folder.mkdir()
    rows = {"train": ["u1\ti1\ti2", "u1\ti1 i2\ti3", "u2\ti3\ti1", "u2\ti3 i1\ti4", "u3\ti2\ti5"],
            "valid": ["u1\ti1 i2 i3\ti4", "u2\ti3 i1 i4\ti2"], "test": ["u1\ti1 i2 i3 i4\ti5", "u2\ti3 i1 i4 i2\ti5"]}

    def write(header="user_id:token\titem_id_list:token_seq\titem_id:token", parts=rows):
        for part, lines in parts.items():
            (folder / f"seqbench.{part}.inter").write_text("\n".join([header] + lines) + "\n")

    settings = {"data_path": str(tmp_path), "checkpoint_dir": str(tmp_path / "saved"), "epochs": 1,
                "benchmark_filename": ["train", "valid", "test"], "TIME_FIELD": None,
                "load_col": {"inter": ["user_id", "item_id_list", "item_id"]}, "alias_of_item_id": ["item_id_list"],
                "topk": [3], "valid_metric": "NDCG@3", "hidden_size": 8, "d_state": 4, "MAX_ITEM_LIST_LENGTH": 5}
    write()
    assert recbole_sigma.run("Mamba4Rec", "seqbench", config_dict=settings)["test_result"]
    write(header="user_id:token\titems:token_seq\titem_id:token")
    with pytest.raises(DataFileError, match="seqbench.train.inter, line 1: no 'item_id_list' column, which the run "
                                            "needs as each row's item history"):
        recbole_sigma.run("Mamba4Rec", "seqbench", config_dict={**settings, "load_col": None})
    write()
    (folder / "seqbench.valid.inter").unlink()
    with pytest.raises(DataFileError, match=r"benchmark file\(s\) seqbench.valid.inter not in"):
        recbole_sigma.run("Mamba4Rec", "seqbench", config_dict=settings)


def test_the_scan_splits_lines_as_recboles_reader_does(tmp_path):
    """Any line ending, and csv quoting for a one-character separator (a quoted value may hold the separator,
    a doubled quote, a line break): what RecBole reads, the scan accepts; a stray quote is one line."""
    from recbole_sigma.errors import DataFileError

    head = "user_id:token\titem_id:token\ttimestamp:float\tnote:token"
    for end in ("\r\n", "\r"):  # Windows, old Mac
        assert len(_scan(tmp_path, end.join([head, "u\ti\t1\tx", "u\tj\t2\ty", ""]))) == 2
    quoted = _scan(tmp_path, "\n".join([head, 'u\ti\t1\t"a\tb"', 'u\tj\t2\t"12"" vinyl"', 'u\tk\t3\t"two\nlines"', ""]))
    assert list(quoted["note:token"]) == ["a\tb", '12" vinyl', "two\nlines"]
    with pytest.raises(DataFileError, match=r"tiny.inter, line 3: .*as RecBole's CSV reader reads it; expected a value "
                                            "with a double quote to be quoted whole") as error:
        _scan(tmp_path, "\n".join([head, "u\ti\t1\tx", 'u\tj\t2\t"Weird Al" Yankovic', ""]))
    assert "\n" not in str(error.value)
    # a longer separator is a regex split there: quotes are plain text
    assert len(_scan(tmp_path, "user_id:token::item_id:token::timestamp:float\nu::\"i::1\n", field_separator="::")) == 1


def test_a_missing_sequence_value_is_one_line_on_pandas_3(tmp_path):
    """RecBole 1.2.1 fills a missing sequence value in place, a no-op under pandas 3's copy-on-write: the NaN
    then fails its split deep in _load_feat."""
    import pandas as pd

    from recbole_sigma.errors import DataFileError

    text = "user_id:token\titem_id:token\ttimestamp:float\ttags:token_seq\nu\ti\t1\ta b\nu\tj\t2\t\n"
    if int(pd.__version__.split(".")[0]) < 3:
        _scan(tmp_path, text)
        return
    with pytest.raises(DataFileError, match=r"tiny.inter, line 3: tags is '', which RecBole 1.2.1 cannot read as a "
                                            "sequence on pandas 3"):
        _scan(tmp_path, text)
    _scan(tmp_path, text, load_col={"inter": ["user_id", "item_id", "timestamp"]})  # not loaded: not read


def test_topk_beyond_the_items_of_the_dataset(cli):
    assert_one_line(*cli("--topk=[50]", "--valid_metric=NDCG@50")[::2], "topk=[50] asks for more items",
                    "has 12 items", "expected topk <= 12")
    # a sampled evaluation ranks every item too (the unsampled ones at -inf): topk past its N + 1 is fine
    from types import SimpleNamespace

    from recbole_sigma.config_checks import check_dataset_config
    from recbole_sigma.errors import ConfigError

    config = {"topk": [10], "eval_args": {"mode": {"valid": "uni5", "test": "full"}}, "dataset": "tiny"}
    check_dataset_config(config, SimpleNamespace(item_num=13))
    with pytest.raises(ConfigError, match="expected topk <= 12"):
        check_dataset_config({**config, "topk": [13]}, SimpleNamespace(item_num=13))


def test_users_too_short_for_the_split(cli):
    write_atomic_dataset(cli.data.parent, per_user=3, items=12)
    assert_one_line(*cli("--topk=[5]", "--valid_metric=NDCG@5")[::2], "leaves the validation split empty")


def test_sequential_model_with_random_order(cli):
    assert_one_line(*cli("--eval_args={'split': {'RS': [0.8, 0.1, 0.1]}, 'order': 'RO'}")[::2],
                    "eval_args order='RO': RecBole's sequential models need order TO")


def test_a_key_given_twice_with_two_values(cli, monkeypatch):
    """RecBole reads sys.argv itself and refuses a key given twice with two values: one line."""
    import sys

    args = ["--model=SIGMA", "--epochs=1", "--epochs=2"]
    monkeypatch.setattr(sys, "argv", ["recbole-sigma"] + args)
    assert_one_line(*cli(*args[1:])[::2], "RecBole rejects the config: There are duplicate", "--epochs=2")


def test_data_path_of_the_wrong_type(cli):
    assert_one_line(*cli("--data_path=3")[::2], "data_path=3 is invalid; expected a non-empty string")


def test_unexpected_error_keeps_its_traceback_and_is_logged_to_the_file(tmp_path, monkeypatch):
    """A bug (not a RecBoleSigmaError) is not hidden behind one line: it propagates with its
    traceback, and the run's log file holds it too."""
    import recbole_sigma
    from tests.test_pipeline import bare_root_logger

    def broken(self, interaction):
        raise RuntimeError("a bug in calculate_loss")

    monkeypatch.setattr(recbole_sigma.SIGMA, "calculate_loss", broken)
    monkeypatch.chdir(tmp_path)
    write_atomic_dataset(tmp_path / "data")
    args = ["--model=SIGMA", "--dataset=tiny", f"--data_path={tmp_path / 'data'}",
            f"--checkpoint_dir={tmp_path / 'saved'}", "--state='ERROR'", *TINY_ARGS]
    with bare_root_logger(), contextlib.redirect_stderr(io.StringIO()):
        with pytest.raises(RuntimeError, match="a bug in calculate_loss"):
            main(args)
        for handler in logging.getLogger().handlers:
            handler.flush()
    text = next((tmp_path / "log").rglob("*.log")).read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: a bug in calculate_loss" in text
