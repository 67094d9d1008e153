"""``agebatch serve``: a local web app (Streamlit) to try photos and browse a results file.

``core`` holds what the pages do (plain library code, tested without a browser), ``app`` is the
Streamlit script that lays it out, ``server`` checks the inputs and starts Streamlit with safe
settings. Streamlit is the optional extra ``agebatch[web]``; nothing else in agebatch imports it.
"""
