"""Configs that extend a base config: a deep merge, then validation as one config, with
errors naming the file and line where the offending key came from."""
import yaml

from conftest import LINEAR, run


def write(folder, name, data):
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_config_extends_a_base_and_overrides_keys(tmp_path):
    (tmp_path / "base").mkdir()
    write(tmp_path / "base", "base.yaml", LINEAR)
    write(tmp_path, "child.yaml", {"extends": "base/base.yaml",
                                   "optimizer": {"lr": 0.02}, "train": {"epochs": 7}})
    result = run(["train", "child.yaml", "--print-config"], tmp_path)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.output)
    assert config["optimizer"] == {**config["optimizer"], "type": "sgd", "lr": 0.02}
    assert config["train"]["epochs"] == 7 and config["train"]["batch_size"] == 8
    assert "extends" not in config
    assert run(["train", "child.yaml", "-q"], tmp_path).exit_code == 0


def test_an_error_names_the_file_and_line_the_key_came_from(tmp_path):
    base = dict(LINEAR, train={"epochs": 3, "batch_size": 8, "seed": 0, "shufle": True})
    text = yaml.safe_dump(base, sort_keys=False)
    (tmp_path / "base.yaml").write_text(text)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "shufle" in l)
    child = write(tmp_path, "child.yaml", {"extends": "base.yaml", "optimizer": {"lrr": 0.1}})
    result = run(["train", str(child)], tmp_path)
    assert result.exit_code == 2, result.output
    assert f"train.shufle [base.yaml, line {line}]" in result.output
    assert "child.yaml, line 3" in result.output and "did you mean 'lr'" in result.output


def test_a_missing_or_circular_base_is_refused(tmp_path):
    write(tmp_path, "a.yaml", {"extends": "b.yaml"})
    write(tmp_path, "b.yaml", {"extends": "a.yaml"})
    result = run(["train", "a.yaml"], tmp_path)
    assert result.exit_code == 2 and "extends itself" in result.output, result.output
    write(tmp_path, "c.yaml", {"extends": "nowhere.yaml"})
    result = run(["train", "c.yaml"], tmp_path)
    assert result.exit_code == 2 and "nowhere.yaml does not exist" in result.output
