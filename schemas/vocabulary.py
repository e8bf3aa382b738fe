"""The project's closed vocabularies, each defined once: media types, modalities, enforcement
actions, notice sources, the IPTC digital source types that say how media was made, and the
EU Transparency Database's enumerations that statements of reasons use.

Plain data, no imports: every layer (records, parsing, features, models, policy, statements)
reads its names from here.
"""

from __future__ import annotations

MEDIA_TYPES: tuple[str, ...] = ("video", "image", "audio")
MODALITIES: tuple[str, ...] = ("visual", "audio", "metadata")
# What a detector measures in the media itself; metadata is what an uploader controls.
CONTENT_MODALITIES: tuple[str, ...] = ("visual", "audio")

ACTIONS: tuple[str, ...] = ("none", "label", "reduce_reach", "remove", "human_review")
# What strikes can do to an account (a decision of its own, not a policy rule's action).
SUSPEND_ACTION = "suspend_account"
SUSPENSION_TARGET = "account_enforcement"
NOTICE_SOURCES: tuple[str, ...] = ("user_report", "trusted_flagger")
DETECTION_METHODS: tuple[str, ...] = ("automated", *NOTICE_SOURCES)

# IPTC digital source types (XMP `Iptc4xmpExt:DigitalSourceType`, C2PA actions).
AI_SOURCE_TYPES = frozenset(
    {"trainedAlgorithmicMedia", "compositeSynthetic", "algorithmicMedia", "compositeWithTrainedAlgorithmicMedia"}
)
CAPTURE_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"})

# EU DSA Transparency Database (statements of reasons): the values its API accepts.
DECISION_ACCOUNT = {SUSPEND_ACTION: "DECISION_ACCOUNT_SUSPENDED"}
DECISION_VISIBILITY = {
    "remove": "DECISION_VISIBILITY_CONTENT_REMOVED",
    "reduce_reach": "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "label": "DECISION_VISIBILITY_CONTENT_LABELLED",
}
CONTENT_TYPE = {"video": "CONTENT_TYPE_VIDEO", "image": "CONTENT_TYPE_IMAGE", "audio": "CONTENT_TYPE_AUDIO"}
DSA_AUTOMATED_DECISION = {
    "fully": "AUTOMATED_DECISION_FULLY",
    "partially": "AUTOMATED_DECISION_PARTIALLY",
    "not": "AUTOMATED_DECISION_NOT_AUTOMATED",
}
DSA_SOURCE_TYPE = {
    "automated": "SOURCE_VOLUNTARY",
    "user_report": "SOURCE_ARTICLE_16",
    "trusted_flagger": "SOURCE_TRUSTED_FLAGGER",
}

DSA_ALLOWED: dict[str, frozenset[str]] = {
    "decision_visibility": frozenset(
        {
            "DECISION_VISIBILITY_CONTENT_REMOVED",
            "DECISION_VISIBILITY_CONTENT_DISABLED",
            "DECISION_VISIBILITY_CONTENT_DEMOTED",
            "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
            "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
            "DECISION_VISIBILITY_CONTENT_LABELLED",
            "DECISION_VISIBILITY_OTHER",
        }
    ),
    "decision_account": frozenset({"DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"}),
    "decision_ground": frozenset({"DECISION_GROUND_ILLEGAL_CONTENT", "DECISION_GROUND_INCOMPATIBLE_CONTENT"}),
    "content_type": frozenset(
        {
            "CONTENT_TYPE_APP",
            "CONTENT_TYPE_AUDIO",
            "CONTENT_TYPE_IMAGE",
            "CONTENT_TYPE_PRODUCT",
            "CONTENT_TYPE_SYNTHETIC_MEDIA",
            "CONTENT_TYPE_TEXT",
            "CONTENT_TYPE_VIDEO",
            "CONTENT_TYPE_OTHER",
        }
    ),
    "category": frozenset(
        {
            "STATEMENT_CATEGORY_ANIMAL_WELFARE",
            "STATEMENT_CATEGORY_CONSUMER_INFORMATION",
            "STATEMENT_CATEGORY_CYBER_VIOLENCE",
            "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN",
            "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
            "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
            "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
            "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
            "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE",
            "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
            "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
            "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
            "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
            "STATEMENT_CATEGORY_SELF_HARM",
            "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS",
            "STATEMENT_CATEGORY_VIOLENCE",
        }
    ),
    "source_type": frozenset({"SOURCE_ARTICLE_16", "SOURCE_TRUSTED_FLAGGER", "SOURCE_VOLUNTARY"}),
    "automated_detection": frozenset({"Yes", "No"}),
    "automated_decision": frozenset(DSA_AUTOMATED_DECISION.values()),
    "incompatible_content_illegal": frozenset({"Yes", "No"}),
}
KEYWORD_PREFIX = "KEYWORD_"
EEA = ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS", "IT", "LI",
       "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK")  # fmt: skip
