"""A scan of the atomic files RecBole will load, before it reads them.

RecBole reads ``<dataset>.inter`` (and ``.user`` / ``.item`` when present and named in
``load_col``) with pandas (``Dataset._load_feat``): a line with too few fields is padded with
missing values, a missing user or item id drops the interaction, an unparsable number fails far
from the file, and a column the config needs but does not load surfaces epochs later as a
``KeyError``. ``check_atomic_files(config)`` reads every file RecBole would read, with RecBole's
``field_separator``, ``seq_separator`` and ``encoding``, and raises a one-line
:class:`~recbole_sigma.errors.DataFileError` naming the file, the line and what was expected
(a :class:`~recbole_sigma.errors.ConfigError` for a key that does not match the files). It
checks: an empty file or a header-only file; a header whose columns are not ``name:type``
(token, token_seq, float, float_seq) or repeat a name; the field count of every line; float and
float_seq values; empty or missing ("NA", "null", ...) ids and times; the fields the run needs
(USER_ID_FIELD, ITEM_ID_FIELD, TIME_FIELD for ``order: TO`` and every sequential model, the
fields named in ``load_col``; with ``benchmark_filename``, no TIME_FIELD but every benchmark file and, for a
sequential model, the item history column ``<ITEM_ID_FIELD><LIST_SUFFIX>``; with pandas 3, no missing value in a loaded sequence column, which
RecBole 1.2.1 cannot read there). Blank lines are skipped, as RecBole does. Lines are split as
pandas' python engine splits them for RecBole: with Python's csv reader for a one-character
separator (a value in double quotes may hold the separator, a doubled quote or a line break; a stray
quote is an error), with str.split for a longer one (pandas' regex split; quotes plain text); any
line ending (\n, \r\n, \r). No pandas: Beauty's 198,502-line .inter took about a second on a
busy 2-core machine.
"""
import csv
import io
import os
import re

from recbole_sigma.errors import ConfigError, DataFileError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
# pandas' default missing-value strings: read_csv turns these into NaN in any column.
NA_VALUES = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})


def check_atomic_files(config):
    """Raise DataFileError / ConfigError on the first problem in the files RecBole will load."""
    for path, source in atomic_files(config):
        load, unload = _load_and_unload(config, source)
        if load == set():
            continue  # RecBole does not read this file
        _check_file(config, path, source, load, unload)


def atomic_files(config):
    """[(path, source)] of the atomic files RecBole reads for this config (those present)."""
    folder, token = config["data_path"], config["dataset"]
    benchmark = config["benchmark_filename"]
    if benchmark:
        files = [(os.path.join(folder, f"{token}.{name}.inter"), "inter") for name in benchmark]
        missing = [os.path.basename(p) for p, _ in files if not os.path.isfile(p)]
        if missing:  # RecBole reads each of them
            raise DataFileError(
                f"benchmark file(s) {', '.join(missing)} not in {folder}; expected every file of "
                f"benchmark_filename={benchmark!r} there"
            )
    else:
        path = os.path.join(folder, f"{token}.inter")
        if not os.path.isfile(path):
            raise DataFileError(f"{path} does not exist; expected the dataset's interactions in it")
        files = [(path, "inter")]
    for source in ("user", "item"):
        path = os.path.join(folder, f"{token}.{source}")
        if os.path.isfile(path):
            files.append((path, source))
    for suffix in config["additional_feat_suffix"] or []:
        path = os.path.join(folder, f"{token}.{suffix}")
        if not os.path.isfile(path):
            raise DataFileError(f"{path} does not exist; expected it for additional_feat_suffix {suffix!r}")
        files.append((path, suffix))
    return files


def _load_and_unload(config, source):
    """RecBole's Dataset._get_load_and_unload_col: (fields to load or None for all, fields not to)."""
    load_col, unload_col = config["load_col"], config["unload_col"]
    if load_col is None:
        load = None
    elif not isinstance(load_col, dict):
        raise ConfigError(f"load_col={load_col!r} is invalid; expected a mapping {{inter: [field, ...], ...}}")
    elif source not in load_col:
        load = set()
    elif load_col[source] == "*":
        load = None
    elif isinstance(load_col[source], (list, tuple)) and all(isinstance(f, str) for f in load_col[source]):
        load = set(load_col[source])
    else:
        raise ConfigError(f"load_col {source}={load_col[source]!r} is invalid; expected a list of field names or '*'")
    unload = None
    if isinstance(unload_col, dict) and source in unload_col:
        unload = set(unload_col[source] or [])
    if load and unload:  # RecBole's own check, which raises it as a ValueError once the data is being read
        raise ConfigError(f"load_col and unload_col both name fields of the {source} file; set one of them")
    return load, unload


def _required_fields(config, source):
    """{field: why} that ``source``'s file must have and load."""
    uid, iid, time = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["TIME_FIELD"]
    if source == "user":
        return {uid: "USER_ID_FIELD"} if uid else {}
    if source == "item":
        return {iid: "ITEM_ID_FIELD"} if iid else {}
    if source != "inter":
        return {}
    from recbole.utils import ModelType

    needed = {}
    if uid:
        needed[uid] = "USER_ID_FIELD"
    if iid:
        needed[iid] = "ITEM_ID_FIELD"
    eval_args = config["eval_args"] or {}
    if config["benchmark_filename"]:  # the files are the splits, in their order: no time needed
        if iid and config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            needed[iid + config["LIST_SUFFIX"]] = "each row's item history (benchmark files hold it)"
    elif time and eval_args.get("order") == "TO":
        needed[time] = "TIME_FIELD (eval_args order: TO sorts by it)"
    elif time and config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        needed[time] = "TIME_FIELD (RecBole's sequential models order each user's items by it)"
    return needed


_LINE_END = re.compile(r"\r\n|\r|\n")


def _check_file(config, path, source, load, unload):
    """Raise on the first problem in one atomic file: its text, its header, then every line."""
    text = _read_text(config, path)
    end = _LINE_END.search(text)
    header, body = (text[:end.start()], text[end.end():]) if end else (text, "")
    separator = config["field_separator"]
    names, types = _parse_header(path, header, separator)
    loaded = [n for n in names if (load is None or n in load) and not (unload and n in unload)]
    _check_columns(config, path, source, names, types, load, loaded)
    columns = _Columns(names, types, loaded, {names.index(f) for f in _required_fields(config, source)})
    seen = False
    for number, fields in _records(path, body, separator):
        if len(fields) > 1 or (fields and fields[0].strip()):  # pandas skips an empty or blank line
            seen = True
            _check_line(config, path, number, fields, columns)
    if not seen:
        raise DataFileError(f"{path}, line 2: no data lines after the header; expected one line per record")


def _records(path, body, separator):
    """(line number, fields) of each line after the header, split as pandas' python engine splits them."""
    if len(separator) != 1:  # a regex split of each stripped line there: quotes are plain text
        for number, line in enumerate(_LINE_END.split(body), start=2):
            yield number, line.strip().split(separator) if line.strip() else []
        return
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=separator, quotechar='"', doublequote=True,
                        strict=True)
    try:
        for fields in reader:
            yield reader.line_num + 1, fields  # (a quoted line break: the record's last line)
    except csv.Error as e:
        raise DataFileError(
            f"{path}, line {reader.line_num + 1}: {e}, as RecBole's CSV reader reads it; expected a value with a "
            'double quote to be quoted whole ("...", a quote inside doubled)'
        ) from None


def _read_text(config, path):
    """The file's text in the config's encoding; one-line errors for an unreadable, undecodable or empty file."""
    encoding = config["encoding"]
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataFileError(f"{path} cannot be read: {e.strerror}") from None
    try:
        text = raw.decode(encoding or "utf-8")
    except (UnicodeDecodeError, LookupError) as e:
        if isinstance(e, LookupError):
            raise ConfigError(f"encoding={encoding!r} is not a known text encoding; expected e.g. utf-8") from None
        line = raw[: e.start].count(b"\n") + 1
        raise DataFileError(
            f"{path}, line {line}: bytes that are not {encoding or 'utf-8'} text; expected the file in the "
            "config's encoding (set encoding: to the file's)"
        ) from None
    if not text.strip():
        raise DataFileError(f"{path}, line 1: the file is empty; expected a header of name:type columns, then data lines")
    return text


def _parse_header(path, header, separator):
    """(names, types) of the header's ``name:type`` columns."""
    if header.startswith("\ufeff"):
        raise DataFileError(
            f"{path}, line 1: the header starts with a byte-order mark; expected the file saved without one "
            "(or encoding: utf-8-sig)"
        )
    names, types = [], []
    for column in header.split(separator):
        name, colon, kind = column.partition(":")
        if not colon or not name or kind not in FIELD_TYPES:
            raise DataFileError(
                f"{path}, line 1: header column {column!r} is not name:type; expected columns separated by "
                f"{separator!r}, each name:type with type one of {', '.join(FIELD_TYPES)}"
            )
        if name in names:
            raise DataFileError(f"{path}, line 1: column {name!r} appears twice; expected each name once")
        names.append(name)
        types.append(kind)
    return names, types


def _check_columns(config, path, source, names, types, load, loaded):
    """The fields the run needs are in the header and loaded; load_col names only header columns."""
    header_text = ", ".join(f"{n}:{t}" for n, t in zip(names, types))
    for field, why in _required_fields(config, source).items():
        if field not in names:
            raise DataFileError(
                f"{path}, line 1: no {field!r} column, which the run needs as {why}; the header has {header_text}"
            )
        if field not in loaded:
            raise ConfigError(
                f"load_col / unload_col leave out {field!r} of {os.path.basename(path)}, which the run needs as "
                f"{why}; expected it in load_col {source}"
            )
    if load is not None:
        for field in sorted(load - set(names)):
            raise DataFileError(
                f"{path}, line 1: load_col names {field!r}, which the header does not have ({header_text}); "
                f"expected a {field!r} column or load_col without it"
            )


class _Columns:
    """What a data line is checked against: the header's names and types, which are read."""

    def __init__(self, names, types, loaded, required):
        self.names, self.types, self.required = names, types, required
        floats = {i for i, n in enumerate(names) if n in loaded and types[i] == "float"}
        self.checked = sorted(floats | required)  # required ids and times, loaded floats
        self.float_seqs = [i for i, n in enumerate(names) if n in loaded and types[i] == "float_seq"]
        # RecBole 1.2.1's _load_feat fills a missing sequence value in place (fillna(inplace=True)), which
        # pandas 3's copy-on-write makes a no-op: the NaN then fails its split, far from the file
        import pandas

        na_fails = int(pandas.__version__.split(".")[0]) >= 3
        self.seqs = [i for i, n in enumerate(names) if na_fails and n in loaded and types[i].endswith("_seq")]


def _check_line(config, path, number, fields, columns):
    """One data line: its field count, required values, float and float_seq values, sequence values."""
    names, separator = columns.names, config["field_separator"]
    if len(fields) != len(names):
        raise DataFileError(
            f"{path}, line {number}: {len(fields)} field(s); expected {len(names)} ({', '.join(names)}) "
            f"separated by {separator!r}"
        )
    for i in columns.checked:
        _check_value(path, number, names[i], columns.types[i], fields[i], i in columns.required)
    for i in columns.float_seqs:
        _check_float_seq(path, number, names[i], fields[i], config["seq_separator"])
    for i in columns.seqs:
        if fields[i] in NA_VALUES:
            raise DataFileError(
                f"{path}, line {number}: {names[i]} is {fields[i]!r}, which RecBole 1.2.1 cannot read as a "
                f"sequence on pandas 3; expected at least one value (the column is {names[i]}:{columns.types[i]})"
            )


def _check_value(path, number, name, kind, value, required):
    if required and (value in NA_VALUES or value.strip() in NA_VALUES):
        raise DataFileError(
            f"{path}, line {number}: {name} is {value!r}, which RecBole reads as missing; "
            f"expected a value ({name} is required)"
        )
    if kind == "float" and value not in NA_VALUES:
        try:
            float(value)
        except ValueError:
            raise DataFileError(
                f"{path}, line {number}: {name}={value!r} is not a number; expected a float "
                f"(the column is {name}:float)"
            ) from None


def _check_float_seq(path, number, name, value, seq_separator):
    for piece in filter(None, value.split(seq_separator)):
        try:
            float(piece)
        except ValueError:
            raise DataFileError(
                f"{path}, line {number}: {name} has {piece!r}, not a number; expected floats "
                f"separated by {seq_separator!r} (the column is {name}:float_seq)"
            ) from None
