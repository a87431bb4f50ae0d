"""The garbage collector is paused while a model loads and what the load made is frozen."""

import gc

from p2r_eval.cli.evaluate import collection_deferred


def test_paused_inside_enabled_after_and_the_objects_made_frozen():
    gc.unfreeze()
    assert gc.isenabled()
    try:
        with collection_deferred():
            assert not gc.isenabled()
            made = [[index] for index in range(10_000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(made)
    finally:
        gc.unfreeze()


def test_a_collector_disabled_before_stays_disabled():
    gc.disable()
    try:
        with collection_deferred():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.unfreeze()
