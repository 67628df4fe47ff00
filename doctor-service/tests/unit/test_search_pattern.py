from doctor.domain import like_contains


def test_a_search_term_matches_anywhere():
    assert like_contains("cardio") == "%cardio%"


def test_like_wildcards_in_a_search_term_are_taken_literally():
    assert like_contains("50%_off") == "%50\\%\\_off%"


def test_a_backslash_in_a_search_term_is_taken_literally():
    assert like_contains("a\\b") == "%a\\\\b%"
