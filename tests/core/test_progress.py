from lumos.core.progress import counter, track


def test_track_and_counter_forced_on_and_off(capsys):
    assert list(track(range(3), "x", disable=False)) == [0, 1, 2]
    assert list(track(range(3), "x", disable=True)) == [0, 1, 2]
    for disable in (False, True):
        with counter("decode", total=4, disable=disable) as advance:
            for _ in range(4):
                advance(1)
    err = capsys.readouterr().err
    assert "Traceback" not in err
