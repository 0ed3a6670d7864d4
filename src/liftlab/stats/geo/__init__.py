"""Geo experiment statistics on the small geo x period table.

``tbr``: time-based regression (Kerman, Wang and Vaver 2017), t-based intervals.
``synthetic_control``: simplex weights (Abadie, Diamond and Hainmueller 2010), optionally on
demeaned series (an intercept shift, as GeoLift's fixed effects), with conformal inference
(Chernozhukov, Wüthrich and Zhu 2021).
``common``: what every method returns (``GeoFit``) and the shared diagnostics.
"""
