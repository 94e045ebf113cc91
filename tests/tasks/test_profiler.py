"""``-p`` option strings: PaddleVideo's format and defaults."""
import pytest

from paddlevideo.tasks.profiler import ProfilerOptions, ProfilerOptionsError, TrainingProfiler


def test_defaults_are_paddlevideos():
    options = ProfilerOptions.parse("")
    assert (options.batch_range, options.state, options.sorted_key, options.tracer_option,
            options.profile_path, options.exit_on_finished) == \
        ([10, 20], "All", "total", "Default", "/tmp/profile", True)


def test_the_documented_string():
    options = ProfilerOptions.parse(
        "batch_range=[10,20];state=CPU;tracer_option=Default;profile_path=model.profile")
    assert (options.batch_range, options.state, options.profile_path) == \
        ([10, 20], "CPU", "model.profile")
    spaced = ProfilerOptions.parse("batch_range=[50, 60]; tracer_option=OpDetail; "
                                   "exit_on_finished=false")
    assert spaced.batch_range == [50, 60] and spaced.tracer_option == "OpDetail"
    assert spaced.exit_on_finished is False


@pytest.mark.parametrize("text", ["batch_range=[3]", "batch_range=[a,b]", "sorted_key=fast",
                                  "tracer_option=Full", "state", "profile_dir=x"])
def test_bad_strings_are_errors(text):
    with pytest.raises(ProfilerOptionsError):
        ProfilerOptions.parse(text)


def test_no_option_string_means_no_profiler():
    assert TrainingProfiler.from_string(None) is None
    assert TrainingProfiler.from_string("") is None
