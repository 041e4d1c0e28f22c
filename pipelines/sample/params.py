"""Behaviour groups and the fixed distributions the generator draws from.

Customers belong to one of `BEHAVIOUR_GROUPS`, which differ strongly in recency, order
count, order value, tenure, NPS/CSAT, refund rate, referrals, reviews/shares and support
tickets (see `_GROUP_PARAMS`).  Also here: geography, currencies, names, acquisition
channels, product categories and the codes of the contract's categorical columns.
"""

from __future__ import annotations

import numpy as np

from pipelines.schemas import (
    ACQUISITION_CHANNELS,
    EVENT_TYPES,
    ORDER_STATUSES,
    REFERRAL_STATUSES,
    REWARD_TYPES,
)

BEHAVIOUR_GROUPS = (
    "advocates",
    "regulars",
    "big_spenders",
    "new",
    "lapsed",
    "detractors",
    "prospects",
)
GROUP_SHARES = {
    "advocates": 0.08,
    "regulars": 0.30,
    "big_spenders": 0.10,
    "new": 0.15,
    "lapsed": 0.20,
    "detractors": 0.10,
    "prospects": 0.07,
}
ADV, REG, BIG, NEW, LAP, DET, PRO = range(7)

# Per-group parameters, one value per group in BEHAVIOUR_GROUPS order:
#                      adv    reg    big    new    lap    det    pro
_GROUP_PARAMS: dict[str, tuple[float, ...]] = {
    # signup, in days before the export date: uniform in [lo, hi]
    "signup_lo": (400, 250, 200, 1, 420, 150, 1),
    "signup_hi": (1095, 1095, 1095, 60, 1095, 1095, 1095),
    # orders per customer (all statuses): base + NegBin(r=3, mean=extra), capped
    "orders_base": (8, 5, 2, 1, 2, 3, 0),
    "orders_extra": (17, 11, 1, 0.4, 3, 4, 0),
    "orders_max": (250, 200, 6, 2, 12, 15, 1),
    # days since the last order: lo + exponential(scale) truncated at hi
    "last_lo": (0.05, 0.05, 20, 0, 300, 30, 0),
    "last_scale": (8, 15, 80, 1, 200, 90, 1),
    "last_hi": (30, 60, 180, 1, 800, 240, 1),
    # order value: customer median (lognormal around this), discounts, refunds
    "aov_median": (75, 45, 480, 40, 38, 55, 50),
    "discount_p": (0.20, 0.35, 0.05, 0.60, 0.30, 0.30, 0.30),
    "refund_p": (0.01, 0.025, 0.04, 0.03, 0.04, 0.30, 0.25),
    "opt_in_p": (0.85, 0.70, 0.50, 0.65, 0.35, 0.40, 0.45),
    # surveys: P(responds at all), then 1 + Poisson(extra) responses
    "survey_p": (0.90, 0.45, 0.35, 0.30, 0.25, 0.90, 0.05),
    "survey_extra": (0.6, 0.4, 0, 0, 0, 0.5, 0),
    # referrals: P(sends invitations that did not convert); advocates send 1 + Poisson(1.5)
    "sender_p": (1.0, 0.12, 0, 0.03, 0, 0, 0),
    # relative chance of being a converted referee
    "referee_w": (1.0, 0.8, 0.6, 2.5, 0.6, 0.8, 0),
    # events in the last 365 days: base + Poisson(lambda)
    "review_base": (2, 0, 0, 0, 0, 0, 0),
    "review_lam": (3, 0.3, 0, 0.15, 0, 0.2, 0),
    "share_base": (2, 0, 0, 0, 0, 0, 0),
    "share_lam": (4, 0.1, 0, 0.1, 0, 0, 0),
    "ticket_base": (0, 0, 0, 0, 0, 3, 0),
    "ticket_lam": (0.2, 0.3, 0.1, 0.3, 0, 3, 0.1),
    "open_lam": (6, 4, 1.5, 2, 0.5, 1, 1.5),  # opted-in only
    "click_lam": (1.5, 0.8, 0.3, 0.4, 0.05, 0.1, 0.2),  # opted-in only
    "visit_lam": (5, 4, 1.5, 2.5, 0.15, 1, 1),
    # next-day changes: P(a new order on the day), P(a site visit on the day)
    "next_order_p": (0.05, 0.025, 0.005, 0.01, 0, 0.005, 0),
    "next_visit_p": (0.03, 0.02, 0.01, 0.03, 0.001, 0.01, 0.02),
}
PARAMS = {k: np.asarray(v, dtype=np.float64) for k, v in _GROUP_PARAMS.items()}

# NPS 0..10 and CSAT 1..5 distributions per group (rows: groups; columns: scores).
NPS_PROBS = np.zeros((7, 11))
NPS_PROBS[ADV, 9:11] = (0.35, 0.65)
NPS_PROBS[REG, 7:10] = (0.30, 0.45, 0.25)
NPS_PROBS[BIG, 6:10] = (0.15, 0.35, 0.35, 0.15)
NPS_PROBS[NEW, 6:11] = (0.10, 0.20, 0.30, 0.25, 0.15)
NPS_PROBS[LAP, 3:9] = 1 / 6
NPS_PROBS[DET, 0:6] = (0.15, 0.15, 0.15, 0.20, 0.20, 0.15)
NPS_PROBS[PRO, 5:9] = 0.25
CSAT_PROBS = np.zeros((7, 5))  # columns: csat 1..5
CSAT_PROBS[ADV, 3:5] = (0.30, 0.70)
CSAT_PROBS[REG, 2:5] = (0.20, 0.50, 0.30)
CSAT_PROBS[BIG, 2:5] = (0.20, 0.50, 0.30)
CSAT_PROBS[NEW, 2:5] = (0.20, 0.40, 0.40)
CSAT_PROBS[LAP, 1:4] = 1 / 3
CSAT_PROBS[DET, 0:2] = (0.55, 0.45)
CSAT_PROBS[PRO, 2:4] = 0.5

# Geography: (country, city, currency other than USD or None); country weights below.
COUNTRIES = ("US", "CA", "GB", "DE", "FR", "NL", "AU")
COUNTRY_P = (0.72, 0.05, 0.08, 0.05, 0.04, 0.03, 0.03)
_CITIES = {
    "US": ("New York", "Los Angeles", "Chicago", "Houston", "Seattle", "Austin", "Denver"),
    "CA": ("Toronto", "Vancouver", "Montreal"),
    "GB": ("London", "Manchester", "Bristol"),
    "DE": ("Berlin", "Munich", "Hamburg"),
    "FR": ("Paris", "Lyon"),
    "NL": ("Amsterdam", "Utrecht"),
    "AU": ("Sydney", "Melbourne"),
}
CITY_NAMES = tuple(c for k in COUNTRIES for c in _CITIES[k])
CITY_START = np.cumsum([0] + [len(_CITIES[k]) for k in COUNTRIES])[:-1]
CITY_COUNT = np.array([len(_CITIES[k]) for k in COUNTRIES])
CURRENCIES = ("USD", "EUR", "GBP")
FX_RATES = {"USD": "1.00", "EUR": "1.08", "GBP": "1.27"}  # rate_to_base (USD per unit)
FX = np.array([1.0, 1.08, 1.27])
COUNTRY_CURRENCY = np.array([0, 0, 2, 1, 1, 1, 0])  # local currency per country
LOCAL_CURRENCY_P = 0.35  # share of EU/UK orders paid in the local currency

FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mateo",
    "Amelia",
    "Ethan",
    "Harper",
    "Leo",
    "Lea",
    "Jonas",
    "Chloe",
    "Hugo",
    "Anna",
    "Finn",
    "Zoe",
    "Max",
    "Nora",
    "Omar",
    "Priya",
    "Yuki",
    "Sara",
    "Diego",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Lopez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Martin",
    "Lee",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Muller",
    "Schmidt",
    "Dubois",
    "de Vries",
)
GENDERS = ("female", "male", "non_binary")
GENDER_P = (0.49, 0.46, 0.01, 0.04)  # last: unknown (empty)
# Acquisition channels other than "referral" (that one is set only for actual referees).
ACQ = tuple(c for c in ACQUISITION_CHANNELS if c != "referral")
_ACQ_WEIGHTS = {
    "organic": 0.30,
    "paid_search": 0.20,
    "paid_social": 0.15,
    "social": 0.08,
    "email": 0.07,
    "partner": 0.05,
    "affiliate": 0.06,
    "other": 0.04,
}
ACQ_P = np.array([_ACQ_WEIGHTS[c] for c in ACQ]) / sum(_ACQ_WEIGHTS[c] for c in ACQ)
CHANNEL_CODE = {c: i for i, c in enumerate(ACQUISITION_CHANNELS)}

CATEGORIES = (
    "electronics",
    "home",
    "apparel",
    "beauty",
    "sports",
    "books",
    "grocery",
    "toys",
)
CAT_P = np.array([0.12, 0.15, 0.22, 0.12, 0.10, 0.09, 0.12, 0.08])
CAT_P_BIG = np.array([0.45, 0.30, 0.10, 0.03, 0.07, 0.01, 0.01, 0.03])

STATUS = {s: i for i, s in enumerate(ORDER_STATUSES)}
REF_STATUS = {s: i for i, s in enumerate(REFERRAL_STATUSES)}
REF_CHANNEL_P = np.array([0.35, 0.20, 0.25, 0.08, 0.08, 0.03, 0.01])  # REFERRAL_CHANNELS
REWARD = {r: i for i, r in enumerate(REWARD_TYPES)}
# Double-sided rewards in cents: (referrer, referee), by reward type.
REWARD_CENTS = {"credit": (2000, 1000), "discount": (1500, 1500)}
EVENT = {e: i for i, e in enumerate(EVENT_TYPES)}

# Paid acquisition: marketing_spend channels and their cost per acquired customer.
PAID_CHANNELS = ("paid_search", "paid_social", "affiliate", "partner", "email")
PAID_CAC = np.array([55.0, 40.0, 30.0, 35.0, 8.0])
