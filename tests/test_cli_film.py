"""The film job end to end (issue 31): sources made by ffmpeg as real ones are (fields woven and tagged tt, a
23.976 film telecined to 29.97 with a beep, a letterboxed clip, an anamorphic DVD frame), encoded by the command
with input.deinterlace, input.crop and output.size, checked for what a viewer would see: no combing, 4 frames of
every 5 at 24000/1001 with the sound in step, the bars gone, the exact size. The nano model at 2 steps (its
pictures are noisy: the checks read shapes and times, not detail)."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from streamdiffvsr.cli.main import main

from .test_cli_encode import ffmpeg
from .test_cli_segments import LOSSLESS, encode, framemd5, kill_after_first_segment

pytestmark = [pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"), pytest.mark.slow]

NANO = ["--model", "nano", "--set", "steps=2", "--set", "x265_preset=ultrafast", "--quiet"]
FILM = Fraction(24000, 1001)
FLASH = 12  # the film frame that is white, while the beep sounds
BEEP = f"if(between(t,{FLASH / FILM:.6f},{FLASH / FILM + 0.05:.6f}),0.8*sin(2*PI*1000*t),0)"


def make_interlaced(path: Path) -> Path:
    """A white box moving sideways (6.4 pixels a field) on grey, 48 fields a second woven into 24 frames, coded
    interlaced and tagged top field first: 12 frames of 64x48."""
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=0x303030:size=64x48:rate=48:duration=0.5", "-vf",
        "drawbox=x=0:y=8:w=12:h=32:c=white:t=fill,scroll=h=-0.05,tinterlace=mode=interleave_top,setfield=tff",
        "-c:v", "libx264", "-flags", "+ildct+ilme", "-x264-params", "tff=1", "-field_order", "tt",
        "-pix_fmt", "yuv420p", "-crf", "10", str(path),
    )  # fmt: skip
    return path


def make_telecined(path: Path, seconds: float = 1.001) -> Path:
    """A moving test pattern at 24000/1001 fps, white at film frame FLASH while a 1 kHz beep sounds, telecined
    (3:2) to 30000/1001 and flagged progressive, as a broadcast of a film is: 24 film frames -> 30."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc=size=64x48:rate=24000/1001:duration={seconds},"
        f"drawbox=x=0:y=0:w=iw:h=ih:c=white:t=fill:enable='eq(n,{FLASH})',telecine=first_field=top:pattern=23",
        "-f", "lavfi", "-i", f"aevalsrc='{BEEP}':s=48000:d={seconds}",
        "-c:v", "libx264", "-x264-params", "bframes=0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


def gray_frames(path: Path) -> np.ndarray:
    (video,) = probe_streams(path, "v")
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "rawvideo", "-pix_fmt",
                          "gray", "-"], capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(out, np.uint8).reshape(-1, video["height"], video["width"]).astype(np.float32)


def probe_streams(path: Path, select: str) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", select, "-count_frames", "-show_entries",
         "stream=width,height,r_frame_rate,nb_read_frames,sample_aspect_ratio,start_time:format=duration",
         "-of", "json", str(path)],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(out)["streams"]


def duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, check=True, text=True).stdout  # fmt: skip
    return float(out)


def combing(frames: np.ndarray, field_rows: int) -> float:
    """How strongly rows alternate inside the box's rows, the worst column of the worst frame, in units of the
    frame's contrast: woven fields of a moving edge alternate every ``field_rows`` rows (a field's row, enlarged);
    each row is smoothed over 9 columns first, so the model's grain does not count."""
    worst = 0.0
    kernel = np.ones(9) / 9
    for frame in frames:
        height = frame.shape[0]
        smooth = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, frame)
        step = field_rows
        alternation = np.abs(2 * smooth[step:-step] - smooth[: -2 * step] - smooth[2 * step :]) / 2
        inside = alternation[height * 12 // 48 : height * 36 // 48]  # the box spans rows 8..40 of 48
        contrast = np.percentile(frame, 99) - np.percentile(frame, 50)
        worst = max(worst, float(inside.mean(axis=0).max() / contrast))
    return worst


def audio_start(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a", "-show_entries", "stream=start_time",
                          "-of", "csv=p=0", str(path)], capture_output=True, check=True, text=True).stdout  # fmt: skip
    return float(out)


def flash_and_beep(path: Path) -> tuple[float, float, float]:
    """When OUTPUT shows its brightest frame, when its sound first gets loud and when the sound ends, in seconds
    of its timeline."""
    frames = gray_frames(path)
    (video,) = probe_streams(path, "v")
    rate = Fraction(video["r_frame_rate"])
    flash = int(np.argmax(frames.mean(axis=(1, 2)))) / rate
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-ac", "1", "-ar", "48000", "-f",
                          "s16le", "-"], capture_output=True, check=True).stdout  # fmt: skip
    samples = np.frombuffer(pcm, np.int16)
    start = audio_start(path)
    return float(flash), start + int(np.argmax(np.abs(samples) > 8000)) / 48000, start + len(samples) / 48000


def test_an_interlaced_source_is_deinterlaced_by_auto_and_keeps_its_combing_only_when_told(
    tmp_path: Path,
) -> None:
    source = make_interlaced(tmp_path / "tt.mkv")
    output = tmp_path / "out.mkv"
    assert main(["encode", str(source), str(output), *NANO]) == 0
    (video,) = probe_streams(output, "v")
    assert (video["width"], video["height"], video["nb_read_frames"]) == (256, 192, "12")
    assert combing(gray_frames(output), 4) < 0.4  # measured 0.19-0.28; woven: 0.72-0.82
    woven = tmp_path / "woven.mkv"
    assert main(["encode", str(source), str(woven), *NANO, "--set", "deinterlace=off"]) == 0
    assert combing(gray_frames(woven), 4) > 0.5


@pytest.fixture(scope="module")
def telecined(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_telecined(tmp_path_factory.mktemp("film") / "telecined.mkv")


def test_ivtc_gives_four_fifths_of_the_frames_at_film_rate_with_the_sound_in_step(
    telecined: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (source,) = probe_streams(telecined, "v")
    assert (source["r_frame_rate"], source["nb_read_frames"]) == ("30000/1001", "30")
    output = tmp_path / "film.mkv"
    assert main(["encode", str(telecined), str(output), *NANO, "--set", "deinterlace=ivtc"]) == 0
    err = capsys.readouterr().err  # a broadcast film is flagged progressive: said once, done anyway
    assert err.count("streamdiffvsr: deinterlace=ivtc on a source flagged progressive") == 1
    assert "streamdiffvsr: geometry: 64x48 -> ivtc -> model 256x192\n" in err
    (video,) = probe_streams(output, "v")
    assert (video["r_frame_rate"], video["nb_read_frames"]) == ("24000/1001", "24")
    flash, beep, end = flash_and_beep(output)
    assert flash == pytest.approx(float(FLASH / FILM), abs=0.001)  # the white film frame, in its place
    assert beep == pytest.approx(flash, abs=0.005)  # in step (measured: 0.3 ms apart)
    assert end == pytest.approx(float(24 / FILM), abs=0.025)  # as long as the video, within an AAC frame


def test_a_range_with_ivtc_counts_input_frames_and_keeps_the_sound_in_step(
    telecined: Path, tmp_path: Path
) -> None:
    output = tmp_path / "part.mkv"  # INPUT's frames 5..24 (20 of 29.97): 16 film frames, 4..19
    assert main(["encode", str(telecined), str(output), *NANO, "--set", "deinterlace=ivtc", "--start", "5",
                 "--end", "24"]) == 0  # fmt: skip
    (video,) = probe_streams(output, "v")
    assert (video["r_frame_rate"], video["nb_read_frames"]) == ("24000/1001", "16")
    flash, beep, end = flash_and_beep(output)
    assert flash == pytest.approx(float((FLASH - 4) / FILM), abs=0.001)
    assert beep == pytest.approx(flash, abs=0.005)  # measured: 0.3 ms apart; a trim at INPUT's rate: 33 ms
    assert end == pytest.approx(20 * 1001 / 30000, abs=0.025)  # as long as the 16 film frames


def test_crop_auto_takes_the_bars_off_and_none_says_what_they_cost(tmp_path: Path, capsys) -> None:
    source = tmp_path / "scope.mkv"  # 64x32 of picture (no dark part) between 8-pixel black bars, in 64x48
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x32:rate=24:duration=0.25", "-vf",
           "lutyuv=y=val/2+100,pad=64:48:0:8:black",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(source))  # fmt: skip
    assert (
        main(["encode", str(source), str(tmp_path / "dry.mkv"), *NANO, "--set", "size=2x", "--dry-run"]) == 0
    )
    captured = capsys.readouterr()
    assert (
        "streamdiffvsr: INPUT has black borders (0,8,0,8: left,top,right,bottom): --set input.crop=auto takes them "
        "off and saves 33% of the model's compute\n"
    ) in captured.err
    assert "streamdiffvsr: geometry: 64x48 -> model 256x192 -> lanczos 128x96\n" in captured.err
    assert "streamdiffvsr: method=before would run the model on 32x24 instead of 64x48" in captured.err
    assert "  the model gets 64x48 frames (its output 256x192)\n" in captured.out
    output = tmp_path / "out.mkv"
    assert main(["encode", str(source), str(output), *NANO, "--set", "crop=auto"]) == 0
    assert (
        "streamdiffvsr: geometry: 64x48 -> crop 0,8,0,8 -> 64x32 -> model 256x128\n"
        in capsys.readouterr().err
    )
    (video,) = probe_streams(output, "v")
    assert (video["width"], video["height"], video["nb_read_frames"]) == (256, 128, "6")
    frames = gray_frames(output)
    assert frames[:, :4].mean() > 80 and frames[:, -4:].mean() > 80  # picture to the edges: no bar left


def test_an_anamorphic_dvd_frame_gets_the_exact_height_in_square_pixels(tmp_path: Path) -> None:
    source = tmp_path / "dvd.mkv"  # 720x480 shown 16:9 (SAR 32:27)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=720x480:rate=30000/1001", "-frames:v", "3", "-vf", "setsar=32/27",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(source))  # fmt: skip
    output = tmp_path / "out.mkv"  # method=before: the model runs on 106x60 (a cheap test), outputs 424x240
    assert (
        main(["encode", str(source), str(output), *NANO, "--set", "size=240p", "--set", "method=before"]) == 0
    )
    (video,) = probe_streams(output, "v")
    assert (video["width"], video["height"], video["nb_read_frames"]) == (426, 240, "3")
    assert video.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")  # 426x240 is 16:9 in square pixels


def test_a_split_ivtc_encode_resumes_and_equals_the_one_segment_encode(
    tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "two_scenes.mkv"  # two film scenes of 10 frames, telecined: 25 frames at 29.97
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=32x24:rate=24000/1001:duration=0.417", "-f", "lavfi", "-i",
        "color=c=blue:size=32x24:rate=24000/1001:duration=0.417", "-f", "lavfi", "-i", "sine=duration=1.0",
        "-filter_complex", "[0][1]concat=n=2:v=1:a=0,telecine=pattern=23[v]", "-map", "[v]", "-map", "2",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(source),
    )  # fmt: skip
    film = ["--set", "deinterlace=ivtc"]
    linear = tmp_path / "linear.mkv"
    assert main(["encode", str(source), str(linear), "--model", str(tiny_checkpoint), *LOSSLESS, *film]) == 0
    output = tmp_path / "split.mkv"
    args = [str(source), str(output), "--model", str(tiny_checkpoint), *LOSSLESS, *film,
            "--set", "segment.min_frames=5", "--workers", "1"]  # fmt: skip
    kill_after_first_segment(args, tmp_path / ".split.mkv.segments")
    refused = encode(*args, "--set", "size=2x", check=False)
    assert refused.returncode == 2 and "holds segments of another encode" in refused.stderr
    resumed = encode(*args)
    assert "resuming: 1 of 2 segments already done" in resumed.stderr
    assert framemd5(output) == framemd5(linear)
    (video,) = probe_streams(output, "v")
    assert (video["r_frame_rate"], video["nb_read_frames"]) == ("24000/1001", "20")
    assert duration(output) == pytest.approx(duration(linear), abs=0.001)


def test_preview_shows_the_prepared_source_beside_the_sized_output(tmp_path: Path, capsys) -> None:
    from PIL import Image

    from streamdiffvsr.cli.preview.picture import Layout

    source = tmp_path / "scope.mkv"  # 64x32 of picture between 8-pixel black bars
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x32:rate=24:duration=0.5", "-vf",
           "lutyuv=y=val/2+100,pad=64:48:0:8:black", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(source))  # fmt: skip
    picture = tmp_path / "look.png"
    assert main(["preview", str(source), str(picture), "--model", "nano", "--set", "steps=2", "--set", "crop=auto",
                 "--set", "size=2x", "--at", "6"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    assert "streamdiffvsr: geometry: 64x48 -> crop 0,8,0,8 -> 64x32 -> model 256x128 -> lanczos 128x64\n" in (
        captured.err
    )
    assert "  frames     12 (0:00:01 at 24 fps)\n" in captured.out
    # every panel is the output's 128x64: the cropped source's pixels enlarged, bicubic, the model's sized output
    height, width = Layout(128, 64, 3, 1).size
    assert Image.open(picture).size == (width, height)
    panel = np.asarray(Image.open(picture).convert("L"))[90:100, 6:518]  # the source panel's top rows
    assert panel.mean() > 80  # the picture, not the bar above it
    # the dry run's estimate is for the same geometry: the speed preview measured on the cropped frames
    dry = ["encode", str(source), str(tmp_path / "out.mkv"), "--model", "nano", "--set", "steps=2", "--set",
           "crop=auto", "--set", "size=2x", "--dry-run"]  # fmt: skip
    assert main(dry) == 0
    out = capsys.readouterr().out
    assert "  the model gets 64x32 frames (its output 256x128)\n" in out and "measured by preview" in out
