"""Reference tables scenarios draw on: Brazilian cities and regions, ISO 18245 merchant category
codes, and the names of channels, transaction types and rails."""

from __future__ import annotations

# The names of channels, transaction types and rails belong to the event contract; a scenario
# weighs them by these names.
from bankstream.events import CUSTOMER_CHANNELS, CustomerChannel, TransferRail
from bankstream.events import CardKind as CardKind
from bankstream.events import MixType as MixType

Rail = TransferRail  # the rails whose weights a scenario gives
Channel = CustomerChannel  # the channels a scenario weighs (not "none": nobody acts there)
CHANNELS = CUSTOMER_CHANNELS

# Brazilian states -> macro-region (IBGE).
REGIONS: dict[str, str] = {
    **dict.fromkeys(("AC", "AM", "AP", "PA", "RO", "RR", "TO"), "Norte"),
    **dict.fromkeys(("AL", "BA", "CE", "MA", "PB", "PE", "PI", "RN", "SE"), "Nordeste"),
    **dict.fromkeys(("DF", "GO", "MS", "MT"), "Centro-Oeste"),
    **dict.fromkeys(("ES", "MG", "RJ", "SP"), "Sudeste"),
    **dict.fromkeys(("PR", "RS", "SC"), "Sul"),
}

# Default cities: the largest Brazilian cities, weighted by population in thousands (IBGE Census
# 2022), the kind of places the original demo drew customers from.
DEFAULT_CITIES: list[tuple[str, str, float]] = [
    ("São Paulo", "SP", 11451),
    ("Rio de Janeiro", "RJ", 6212),
    ("Brasília", "DF", 2817),
    ("Fortaleza", "CE", 2428),
    ("Salvador", "BA", 2418),
    ("Belo Horizonte", "MG", 2316),
    ("Manaus", "AM", 2063),
    ("Curitiba", "PR", 1774),
    ("Recife", "PE", 1488),
    ("Goiânia", "GO", 1437),
    ("Porto Alegre", "RS", 1333),
    ("Belém", "PA", 1304),
    ("Campinas", "SP", 1139),
    ("Florianópolis", "SC", 537),
]

# Readable merchant categories -> ISO 18245 merchant category code (MCC).
MCC: dict[str, int] = {
    "grocery": 5411,
    "restaurants": 5812,
    "fast_food": 5814,
    "bars": 5813,
    "fuel": 5541,
    "pharmacy": 5912,
    "clothing": 5651,
    "electronics": 5732,
    "department_store": 5311,
    "marketplace": 5399,
    "home_improvement": 5200,
    "rideshare": 4121,
    "airlines": 4511,
    "hotels": 7011,
    "utilities": 4900,
    "telecom": 4814,
    "digital_goods": 5818,
    "health": 8011,
    "education": 8299,
    "entertainment": 7832,
    "gambling": 7995,
    "money_transfer": 4829,
    "crypto": 6051,
}
