# Shared by every page, and dates (src/i18n, src/web/pages.rs).

continue = Continuar
continue-text = Ya inició sesión. Regresando a la aplicación…
go-to-account = Ir a su cuenta
back-to-account = Volver a su cuenta
back-to-sign-in = Volver al inicio de sesión
from-another-site = Este formulario se envió desde otro sitio y fue rechazado.
form-expired = Este formulario venció o no se envió desde este navegador. Vuelva atrás e inténtelo de nuevo.
request-unreadable = No se pudo leer la solicitud: { $why }.
actions = Acciones
name = Nombre

error-bad-request = No se pudo completar
error-not-found = Página no encontrada
error-not-found-text = No hay nada en esta dirección.
error-forbidden = Solicitud rechazada
error-unavailable = Inténtelo de nuevo
error-unavailable-text = El servicio está ocupado o no está disponible por un momento. Vuelva a intentarlo en unos instantes.
error-internal = Algo salió mal
error-internal-text = Ocurrió un error interno. Inténtelo de nuevo.
error-too-many = Demasiados intentos
error-too-many-text = Hubo demasiados intentos desde su red. Espere y vuelva a intentarlo.

# A moment: "7 dic 2026, 14:05 UTC". $zone is the time zone's abbreviation.
date-time = { $day } { $month } { $year }, { $time } { $zone }
month-1 = ene
month-2 = feb
month-3 = mar
month-4 = abr
month-5 = may
month-6 = jun
month-7 = jul
month-8 = ago
month-9 = sep
month-10 = oct
month-11 = nov
month-12 = dic
never = nunca

role-user = Usuario
role-support = Soporte
role-org-admin = Administrador de la organización
role-super-admin = Superadministrador
language-name = Español (Latinoamérica)
