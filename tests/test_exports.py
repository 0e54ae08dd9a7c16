import memlane


def test_public_names_are_sorted_and_importable() -> None:
    assert memlane.__all__ == sorted(memlane.__all__)
    for name in memlane.__all__:
        assert hasattr(memlane, name), name


def test_every_error_is_a_memlane_error_with_a_status() -> None:
    for name in memlane.__all__:
        obj = getattr(memlane, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, memlane.MemlaneError)
            assert 400 <= obj.http_status < 600
