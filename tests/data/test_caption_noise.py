"""`caption_noise`: the four kinds of caption noise `ivt data stats` reports, counted exactly on crafted captions."""

from ivt_hf.data.caption_noise import CaptionRecord, caption_kinds, caption_noise, normalised


def records(*rows):
    return [
        CaptionRecord(split, person_id, f"{split}/{person_id}_{index}.jpg", caption)
        for index, (split, person_id, caption) in enumerate(rows)
    ]


def test_each_kind_is_recognised_and_clean_captions_are_not():
    assert caption_kinds("A woman in a red coat carries a black backpack.") == []
    assert caption_kinds("The man wears a grey jacket, blue jeans and white shoes") == []
    assert caption_kinds("一个穿红色外套的女人") == ["non_english", "empty_or_short"]
    assert caption_kinds("Una mujer con un abrigo rojo lleva una mochila negra") == ["non_english"]
    assert caption_kinds("The woman wears a [description] of <pants> here") == ["code_or_markup"]
    assert caption_kinds("A man in a black coat./nHe walks fast") == ["code_or_markup"]
    assert caption_kinds("") == ["empty_or_short"]
    assert caption_kinds("a man") == ["empty_or_short"]
    assert caption_kinds("a man", min_words=2) == []


def test_shared_captions_count_every_caption_given_to_more_than_one_identity():
    report = caption_noise(
        records(
            ("train", 1, "A man in a black coat."),
            ("train", 2, "a man in a   black coat"),  # the same text for another identity
            ("test", 3, "A MAN IN A BLACK COAT!"),  # and a third, in another split: a leak
            ("train", 4, "A woman with a red umbrella walks on the road."),
            ("train", 4, "A woman with a red umbrella walks on the road."),  # the same identity twice: not noise
            ("train", 5, ""),
            ("train", 6, ""),  # empty captions are short, not shared
        )
    )
    assert report.total == 7
    assert report.counts == {"shared": 3, "non_english": 0, "code_or_markup": 0, "empty_or_short": 2}
    assert report.examples["shared"] == ["3 captions of ids 1, 2, 3 (test, train): 'A man in a black coat.'"]
    assert report.examples["empty_or_short"] == ["train train/5_5.jpg: ''", "train train/6_6.jpg: ''"]


def test_the_report_is_a_table_with_examples_and_caps_them():
    rows = [("train", index, "ab") for index in range(10)]
    report = caption_noise(records(*rows), max_examples=2)
    assert report.counts["empty_or_short"] == 10 and len(report.examples["empty_or_short"]) == 2
    text = report.format().splitlines()
    assert text[0] == "caption noise over 10 captions"
    assert text[5] == "empty or very short                           10  100.00%"
    assert "same caption, different identities" in text[2] and text[2].split()[-2:] == ["10", "100.00%"]


def test_normalised_keeps_inner_punctuation():
    assert normalised("  A man, in black.  ") == "a man, in black"


def test_data_stats_reports_the_noise_of_a_raw_copy(tmp_path, capsys):
    """`ivt data stats` on an RSTPReid copy where two people share a caption and one caption is a fragment."""
    from test_data_benchmarks import BENCHMARKS, RSTP_IMAGES, make_copy, make_records

    from ivt_hf.cli import main

    records = make_records("rstpreid", RSTP_IMAGES)
    records[0]["captions"][0] = "A man in a black coat."
    records[1]["captions"][1] = "a man in a black coat"  # person 1: the same text as person 0's
    records[4]["captions"][0] = "Woman.</s>"
    assert BENCHMARKS["rstpreid"].annotation_files[0] == "data_captions.json"
    root = make_copy(tmp_path / "RSTPReid", "rstpreid", records=records)
    assert main(["data", "stats", str(root), "--dataset_name", "rstpreid"]) == 0
    out = capsys.readouterr().out.splitlines()
    start = out.index("caption noise over 12 captions")
    assert out[start + 2 :] == [
        "same caption, different identities             2   16.67%",
        "non-English                                    0    0.00%",
        "code or markup fragments                       1    8.33%",
        "empty or very short                            1    8.33%",
        "same caption, different identities, for example:",
        "  2 captions of ids 0, 1 (train): 'A man in a black coat.'",
        "code or markup fragments, for example:",
        "  test imgs/3901_c14_0007.jpg: 'Woman.</s>'",
        "empty or very short, for example:",
        "  test imgs/3901_c14_0007.jpg: 'Woman.</s>'",
    ]
