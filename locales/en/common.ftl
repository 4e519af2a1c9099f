# Shared by every page, and dates (src/i18n, src/web/pages.rs).

continue = Continue
continue-text = You are signed in. Returning you to the application…
go-to-account = Go to your account
back-to-account = Back to your account
back-to-sign-in = Back to sign in
from-another-site = This form was sent from another site and was refused.
form-expired = This form has expired or was not sent from this browser. Please go back and try again.
request-unreadable = The request could not be read: { $why }.
actions = Actions
name = Name

error-bad-request = That did not work
error-not-found = Page not found
error-not-found-text = There is nothing at this address.
error-forbidden = Request refused
error-unavailable = Please try again
error-unavailable-text = The service is busy or briefly unavailable. Please try again in a moment.
error-internal = Something went wrong
error-internal-text = An internal error occurred. Please try again.
error-too-many = Too many attempts
error-too-many-text = There have been too many attempts from your network. Please wait and try again.

# A moment: "7 Dec 2026, 14:05 UTC". $zone is the time zone's abbreviation.
date-time = { $day } { $month } { $year }, { $time } { $zone }
month-1 = Jan
month-2 = Feb
month-3 = Mar
month-4 = Apr
month-5 = May
month-6 = Jun
month-7 = Jul
month-8 = Aug
month-9 = Sep
month-10 = Oct
month-11 = Nov
month-12 = Dec
never = never

role-user = User
role-support = Support
role-org-admin = Organisation administrator
role-super-admin = Super administrator
language-name = English
