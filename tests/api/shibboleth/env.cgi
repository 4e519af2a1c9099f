#!/bin/sh
# The protected page: what the SP passed on (mod_shib's variables), one per line.
printf 'Content-Type: text/plain\n\n'
env | sort
