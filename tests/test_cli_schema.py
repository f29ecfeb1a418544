"""Presets and the schema: bundled presets validate, --set is typed, mistakes name the key and allowed values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamdiffvsr.cli.errors import CliError
from streamdiffvsr.cli.main import main
from streamdiffvsr.cli.media.vpy import generate_script
from streamdiffvsr.cli.settings.presets import bundled_presets, load_settings
from streamdiffvsr.cli.settings.schema import KEYS
from streamdiffvsr.options import OPTIONS, number
from tests.test_options import another_value

REQUIRED_PRESETS = {"quality", "balanced", "fast", "lowvram", "preview"}


def test_bundled_presets_validate_and_describe_themselves() -> None:
    assert set(bundled_presets()) >= REQUIRED_PRESETS
    for name in bundled_presets():
        settings = load_settings(name)
        assert settings.section("engine")["steps"] >= 1
        assert settings.section("encoder")["x265_preset"]
    assert load_settings(None).source == "balanced"


def test_presets_command_lists_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(bundled_presets())
    assert any(line.startswith("balanced (default)") for line in lines)
    assert main(["presets", "--keys"]) == 0
    keys = capsys.readouterr().out
    assert "engine.steps" in keys
    assert re.search(r"^engine\.noise .*; default 'fixed'$", keys, re.MULTILINE)
    for key, default in (("input.deinterlace", "auto"), ("input.crop", "none"), ("output.size", "4x"),
                         ("output.kernel", "lanczos"), ("output.method", "after")):  # fmt: skip
        assert re.search(rf"^{re.escape(key)} .*; default '{default}'$", keys, re.MULTILINE), key


def test_former_key_name_works_with_a_notice_naming_the_version() -> None:
    settings = load_settings(None, ["checkpoint_interval=5"])
    assert settings["snapshot_interval"] == 5
    assert settings.notices == (
        "engine.checkpoint_interval is now engine.snapshot_interval; the old name stops working in version 0.3",
    )
    assert load_settings(None, ["snapshot_interval=5"]).notices == ()


def test_frames_passes_every_engine_key_to_the_engine() -> None:
    from streamdiffvsr.cli.commands.frames import engine_options

    engine = load_settings(None, ["compile=true", "steps=3"]).section("engine")
    options = engine_options(engine)
    assert options["compile"] is True and options["num_steps"] == 3 and options["device"] in ("cpu", "cuda:0")


def test_presets_command_prints_a_preset_file_like_a_bundled_one(tmp_path: Path, capsys) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('description = "mine"\n[engine]\nsteps = 2\n')
    assert main(["presets", str(path)]) == 0
    assert capsys.readouterr().out == path.read_text()
    path.write_text("[engine]\nsteps = 0\n")  # checked as --preset would check it
    assert main(["presets", str(path)]) == 2
    assert "engine.steps must be an integer from 1 to 50 (got 0)" in capsys.readouterr().err
    assert main(["presets", "ultra"]) == 2
    assert "unknown preset 'ultra'" in capsys.readouterr().err


def test_set_overrides_are_typed_by_the_schema() -> None:
    settings = load_settings(
        "quality",
        [
            "steps=2",
            "engine.flow=dis",
            "scene_detect=no",
            "crf=18.5",
            "precision=auto",
            "x265_params=aq-mode=3",
            "engine.noise=warped",
        ],
    )
    assert settings["steps"] == 2 and isinstance(settings["steps"], int)
    assert settings["flow"] == "dis"
    assert settings["scene_detect"] is False
    assert settings["crf"] == 18.5
    assert settings["precision"] is None and "precision" not in settings.section("engine")
    assert settings["x265_params"] == "aq-mode=3"
    assert settings.section("engine")["noise"] == "warped"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("stpes=2", "unknown key 'stpes'"),
        ("encoder.steps=2", "unknown key 'encoder.steps'"),
        ("steps=two", "engine.steps must be an integer from 1 to 50"),
        ("steps=0", "engine.steps must be an integer from 1 to 50"),
        ("flow_scale=9", "engine.flow_scale must be a number above 0, up to 4"),
        ("flow_scale=0", "engine.flow_scale must be a number above 0, up to 4"),
        ("scene_threshold=0", "engine.scene_threshold must be a number above 0, up to 1"),
        ("checkpoint_interval=0", "engine.snapshot_interval must be an integer >= 1"),
        ("flow=raft", "engine.flow must be one of auto, raft_large, raft_small, dis, none"),
        ("noise=frozen", "engine.noise must be one of fresh, fixed, warped"),
        ("scene_detect=maybe", "engine.scene_detect must be true or false"),
        ("crf=nan", "encoder.crf must be a number from 0 to 63"),
        ("x265_params=a b", "encoder.x265_params must be x265 parameters"),
        ("steps", "expected key=value"),
        ("codec=vp9", "encoder.codec must be one of x265, x264, svtav1, ffv1"),
        ("crf=55", "encoder.crf must be at most 51 for x265"),
        ("codec=ffv1,x265_params=aq-mode=3", "encoder.x265_params applies to codec x265 only"),
        ("codec=svtav1,pix_fmt=yuv444p", "encoder.pix_fmt must be one of yuv420p, yuv420p10le for svtav1"),
        ("codec=x264,pix_fmt=yuv420p12le", "encoder.pix_fmt must be one of"),
        ("codec=svtav1,tune=grain", "encoder.tune does not apply to svtav1"),
        ("segment.min_frames=0", "segment.min_frames must be an integer >= 1"),
        ("deinterlace=yadif", "input.deinterlace must be one of auto, off, bwdif, bwdif-double, ivtc"),
        ("input.crop=1,2,3", "input.crop must be none, auto or four pixel counts left,top,right,bottom"),
        ("output.size=8x", "output.size 8x: a factor must be from 1x to 4x (the model is 4x)"),
        ("size=1921x1080", "output.size 1921x1080: sides must be even numbers"),
        ("size=big", "output.size must be a factor (4x, 2x, 1.5x), a height (2160p) or width x height"),
        ("kernel=sinc", "output.kernel must be one of lanczos, spline16, spline36, spline64, bicubic"),
        ("output.method=during", "output.method must be one of after, before"),
    ],
)
def test_bad_overrides_name_the_key_and_allowed_values(override: str, expected: str) -> None:
    with pytest.raises(CliError, match=re.escape(expected)):
        load_settings(None, override.split(",") if "codec=" in override else [override])


def test_input_and_output_keys_in_a_preset_file_and_set_are_normalised_by_the_geometry_rules(
    tmp_path: Path,
) -> None:
    path = tmp_path / "film.toml"
    path.write_text('[input]\ndeinterlace = "ivtc"\ncrop = "0, 140, 0, 140"\n[output]\nsize = "2160P"\n')
    settings = load_settings(str(path), ["kernel=spline36"])
    assert settings.section("input") == {"deinterlace": "ivtc", "crop": "0,140,0,140"}
    assert settings.section("output") == {"size": "2160p", "kernel": "spline36", "method": "after"}
    assert "'deinterlace': 'ivtc'," in generate_script(settings)  # the generated script applies them
    assert load_settings(None, ["size=1.50x", "crop=AUTO"]).section("output")["size"] == "1.5x"
    path.write_text("[output]\nsize = 2\n")
    with pytest.raises(CliError, match=re.escape("output.size must be a factor from 1x to 4x (2x, 1.5x)")):
        load_settings(str(path))


def test_user_preset_file_works_like_a_bundled_one(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('description = "mine"\n[engine]\nsteps = 3\nflow = "dis"\n[encoder]\ncrf = 18\n')
    settings = load_settings(str(path), ["crf=17"])
    assert (settings["steps"], settings["flow"], settings["crf"]) == (3, "dis", 17.0)
    assert settings["x265_preset"] == "medium"  # unset keys keep the defaults


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[engine]\nsteps = 2.5\n", "engine.steps must be an integer"),
        ("[engine]\nscene_detect = 1\n", "engine.scene_detect must be true or false"),
        ("[engine]\ncrf = 20\n", "unknown key engine.crf"),
        ("[video]\ncrf = 20\n", "unknown table or key 'video'"),
        ("[engine\n", "invalid TOML"),
    ],
)
def test_bad_preset_files_are_one_line_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CliError, match=re.escape(expected)):
        load_settings(str(path))


def test_unknown_preset_lists_the_bundled_ones() -> None:
    with pytest.raises(CliError, match="unknown preset 'ultra'; choose one of .*balanced"):
        load_settings("ultra")
    with pytest.raises(CliError, match="does not exist"):
        load_settings("./missing.toml")


def test_generated_script_is_valid_python_with_settings_but_no_paths(tmp_path: Path) -> None:
    weights = tmp_path / "raft'\nimport shutil.toml"
    settings = load_settings("fast", ["steps=3", f"flow_weights={weights}"])
    text = generate_script(settings)
    compile(text, "generated.vpy", "exec")
    assert "'steps': 3," in text and "'flow': 'raft_small'," in text
    assert str(tmp_path) not in text and "import shutil" not in text
    assert "vs.YUV420P10" in text


def test_generated_script_passes_every_engine_setting_to_the_filter() -> None:
    """Each engine key set in the preset reaches the filter's call in the generated script (paths travel as
    script arguments instead)."""
    values = {option.name: another_value(option) for option in OPTIONS if option.kind != "path"}
    text = generate_script(load_settings(None, [f"{name}={value}" for name, value in values.items()]))
    for name, value in values.items():
        assert f"    {name!r}: {value!r},  #" in text, name


def test_script_command_prints_the_vpy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["script", "--preset", "preview", "--set", "seed=7"]) == 0
    out = capsys.readouterr().out
    assert "'seed': 7," in out and "vs.YUV420P8" in out
    assert main(["script", str(tmp_path / "missing.mkv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_every_key_documents_its_allowed_values(capsys: pytest.CaptureFixture[str]) -> None:
    """`presets --keys` lists every key with its help and its allowed values: each choice, each bound."""
    assert main(["presets", "--keys"]) == 0
    listing = capsys.readouterr().out
    for key in KEYS:
        allowed = key.allowed()
        assert f"{key.section}.{key.name}" in listing and key.help in listing and allowed in listing, key.name
        for word in [*(key.choices or ()), *([number(key.bounds.low)] if key.bounds else [])]:
            assert word in allowed, (key.name, word)
        if key.bounds and key.bounds.high is not None:
            assert number(key.bounds.high) in allowed, key.name


def test_x264_has_its_own_preset_key_and_reads_x265_preset_with_a_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamdiffvsr.cli.media.ffmpeg_cmd import video_options
    from streamdiffvsr.cli.media.probe import SourceInfo

    info = SourceInfo(fps=24, time_base=None, color_primaries=None, color_transfer=None)
    own = load_settings(None, ["codec=x264", "x264_preset=slow", "x265_preset=fast"])
    assert video_options(own.section("encoder"), info, False)["preset"] == "slow"
    assert own.notices == ()
    old = tmp_path / "old.toml"
    old.write_text('[encoder]\ncodec = "x264"\nx265_preset = "veryfast"\n')
    capsys.readouterr()
    legacy = load_settings(str(old))
    assert video_options(legacy.section("encoder"), info, False)["preset"] == "veryfast"
    assert "encoder.x264_preset" in capsys.readouterr().err and len(legacy.notices) == 1


def test_every_codec_of_the_registry_is_a_choice_with_its_own_options() -> None:
    from streamdiffvsr.cli.media.ffmpeg_cmd import video_options
    from streamdiffvsr.cli.media.probe import SourceInfo
    from streamdiffvsr.cli.settings.codecs import CODECS

    info = SourceInfo(fps=24, time_base=None, color_primaries=None, color_transfer=None)
    for codec in CODECS.values():
        options = video_options(load_settings(None, [f"codec={codec.name}"]).section("encoder"), info, False)
        assert options["c:v"] == codec.encoder
        assert ("crf" in options) == (codec.crf_max is not None)
        assert (codec.params_option in options) == (
            codec.params_option is not None and codec.fixed_params != ()
        )


@pytest.mark.parametrize(
    ("codec", "option", "params"),
    [
        ("x265", "x265-params", "log-level=warning:master-display=G(13250,34500)B(7500,3000)R(34000,16000)"
         "WP(15635,16450)L(10000000,50):max-cll=1000,400:aq-mode=3"),
        ("x264", "x264-params", "mastering-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
         "L(10000000,50):cll=1000,400"),
        ("svtav1", "svtav1-params", "mastering-display=G(0.265,0.69)B(0.15,0.06)R(0.68,0.32)WP(0.3127,0.329)"
         "L(1000,0.005):content-light=1000,400"),
        ("ffv1", None, None),
    ],
)  # fmt: skip
def test_hdr10_metadata_is_written_in_each_codecs_own_syntax(codec: str, option: str, params: str) -> None:
    from streamdiffvsr.cli.media.ffmpeg_cmd import video_options
    from streamdiffvsr.cli.media.probe import SourceInfo
    from streamdiffvsr.cli.settings.codecs import CODECS, Hdr10

    hdr10 = Hdr10((13250, 34500, 7500, 3000, 34000, 16000, 15635, 16450, 10000000, 50), (1000, 400))
    info = SourceInfo(
        fps=24, time_base=None, color_primaries="bt2020", color_transfer="smpte2084", hdr10=hdr10
    )
    sets = [f"codec={codec}", *(["x265_params=aq-mode=3"] if codec == "x265" else [])]
    encoder = load_settings(None, sets).section("encoder")
    options = video_options(encoder, info, tag_colour=True)
    assert {key: value for key, value in options.items() if key.endswith("-params")} == (
        {option: params} if option else {}
    )
    assert list(options)[-1] == (option or "color_trc")  # the parameter list comes last, as it always did
    assert (CODECS[codec].hdr10_notice(hdr10) is None) == (option is not None)
    assert "display=" not in str(video_options(encoder, info, tag_colour=False))  # a --vpy: not the source's


def test_presets_keys_lines_up_every_section_and_prints_ranges_in_full(capsys) -> None:
    assert main(["presets", "--keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = {re.match(r"\S+ +", line).end() for line in lines[::2]}  # after "engine.steps   "
    helps = {len(line) - len(line.lstrip()) for line in lines[1::2]}
    columns = values | helps
    assert len(columns) == 1, columns  # engine.*, encoder.* and segment.* values start in one column
    text = "\n".join(lines)
    assert "engine.seed               an integer from 0 to 9223372036854775807; default 0" in text


def test_an_unknown_key_lists_the_known_ones_with_their_section() -> None:
    with pytest.raises(CliError) as error:
        load_settings(None, ["engine.stepz=1"])
    assert str(error.value).startswith(
        "unknown key 'engine.stepz'; did you mean engine.steps? known keys: engine.steps, engine.precision, "
    )
    assert "encoder.crf, " in str(error.value) and ", segment.min_frames" in str(error.value)


def test_encode_help_says_what_start_and_end_count(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["encode", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--start N first frame to encode: a frame number of INPUT, counted from 0 (default 0)" in help_text
    assert "--end N last frame to encode, counted from 0 like --start and included" in help_text
